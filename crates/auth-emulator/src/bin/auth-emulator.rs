//! Runs the auth emulator standalone: `cargo run -p token-keeper-auth-emulator -- --port 8975`.
//!
//! It prints its base URL and the demo client credentials, then serves until
//! Ctrl-C. With `--provider NAME` (repeatable, or `--provider all`) it plays
//! those entries of the provider catalogue instead, each under `/NAME/`.

use std::process::ExitCode;

const USAGE: &str = "usage: auth-emulator [--port PORT] [--provider NAME ...]   (PORT 0 or absent = any free port; NAME a catalogue entry, or all)";

#[allow(
    clippy::print_stderr,
    reason = "a command-line program reports usage errors on stderr"
)]
fn main() -> ExitCode {
    let (port, providers) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("auth-emulator: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auth-emulator: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        if providers.is_empty() {
            auth_emulator::run_standalone(port).await
        } else {
            auth_emulator::run_standalone_profiles(port, &providers).await
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The port and the catalogue entries to play; `Ok(None)` means help was
/// asked for.
fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<(u16, Vec<String>)>, String> {
    let mut port = 0;
    let mut providers = Vec::new();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--provider" => {
                providers.push(args.next().ok_or("--provider needs a value")?);
                continue;
            }
            "--port" => args.next().ok_or("--port needs a value")?,
            other => match other.strip_prefix("--port=") {
                Some(v) => v.to_owned(),
                None => return Err(format!("unexpected argument {other:?}")),
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("invalid port {value:?}"))?;
    }
    Ok(Some((port, providers)))
}
