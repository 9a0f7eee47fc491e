//! A throwaway PostgreSQL cluster for the tests, or the developer's own
//! server from `TOKEN_KEEPER_PG_URL`.
//!
//! The cluster is made with the machine's `initdb` and `pg_ctl` (on `PATH`,
//! or under `/usr/lib/postgresql/*/bin`), run as the `postgres` user when
//! the tests run as root, listening on a free loopback port, in a temporary
//! directory. A watchdog shell holds the read end of a pipe whose write end
//! lives as long as the test process: when the process ends, however it
//! ends, the watchdog stops the server and removes the directory.
//!
//! When neither a cluster nor `TOKEN_KEEPER_PG_URL` works, the tests fail
//! with a message saying how to fix it. They never skip.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// The variable naming a developer's own server.
pub const URL_VAR: &str = "TOKEN_KEEPER_PG_URL";

/// The superuser password of a throwaway cluster (it listens on loopback
/// only and lives as long as one test binary).
pub const PASSWORD: &str = "tk-test-pw-5b1e9c";

/// A running server.
pub struct Cluster {
    url: String,
    port: u16,
    /// `None` for a developer's own server.
    local: Option<Local>,
}

struct Local {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    as_postgres: bool,
    _watchdog_pipe: ChildStdin,
    _watchdog: Child,
}

fn fail(why: &str) -> ! {
    panic!(
        "cannot run the PostgreSQL tests: {why}.\nFix: install the PostgreSQL server so that \
         `initdb` and `pg_ctl` are on PATH or under /usr/lib/postgresql/<version>/bin \
         (Debian/Ubuntu: `apt-get install -y postgresql`), or point the tests at your own \
         server with {URL_VAR}=postgres://user:password@host:port/db (the user must be able to \
         create schemas)."
    )
}

/// The cluster of this test binary, started on first use.
pub fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Cluster::external(url),
        _ => Cluster::start(),
    })
}

fn bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn output(command: &mut Command) -> Result<String, String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&format!("no free loopback port ({e})")))
}

impl Cluster {
    fn external(url: String) -> Self {
        let port = url::Url::parse(&url)
            .ok()
            .and_then(|u| u.port())
            .unwrap_or(5432);
        Self {
            url,
            port,
            local: None,
        }
    }

    /// Starts a new cluster of its own (used directly by tests that
    /// restart it).
    pub fn start() -> Self {
        Self::start_with(&["-c", "fsync=off"])
    }

    /// Starts a new cluster with extra `postgres` options (`-c name=value`).
    pub fn start_with(options: &[&str]) -> Self {
        let bin = bin_dir().unwrap_or_else(|| fail("no initdb and pg_ctl were found"));
        let as_postgres = output(Command::new("id").arg("-u")).is_ok_and(|uid| uid == "0");
        let dir = tempfile::Builder::new()
            .prefix("token-keeper-pg-")
            .tempdir()
            .unwrap_or_else(|e| fail(&format!("cannot create a temporary directory ({e})")))
            .keep();
        if as_postgres {
            let id = |flag: &str| -> u32 {
                output(Command::new("id").args([flag, "postgres"]))
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| {
                        fail(
                            "running as root, but there is no `postgres` user to run the server as",
                        )
                    })
            };
            std::os::unix::fs::chown(&dir, Some(id("-u")), Some(id("-g"))).unwrap_or_else(|e| {
                fail(&format!(
                    "cannot give {} to the postgres user ({e})",
                    dir.display()
                ))
            });
        }
        // The watchdog first, so the directory goes even if setup fails.
        let (watchdog, pipe) = watchdog(&bin, &dir, as_postgres);
        let data = dir.join("data");
        let log = dir.join("server.log");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD)
            .unwrap_or_else(|e| fail(&format!("write {} ({e})", pwfile.display())));
        if as_postgres {
            let _ = output(Command::new("chown").args(["postgres", pwfile.to_str().unwrap()]));
        }
        let run = |program: &str| {
            let path = bin.join(program);
            if as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(path);
                c
            } else {
                Command::new(path)
            }
        };
        output(
            run("initdb")
                .args([
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display())),
        )
        .unwrap_or_else(|e| fail(&format!("initdb failed: {e}")));
        let port = free_port();
        let mut server_options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=300",
            dir.display()
        );
        for option in options {
            server_options.push(' ');
            server_options.push_str(option);
        }
        let local = Local {
            bin,
            data,
            log,
            as_postgres,
            _watchdog_pipe: pipe,
            _watchdog: watchdog,
        };
        local
            .pg_ctl(&["start", "-w", "-t", "60", "-o", &server_options])
            .unwrap_or_else(|e| fail(&format!("the server did not start: {e}")));
        // Keep the options for restarts.
        std::fs::write(dir.join("options"), &server_options).ok();
        Self {
            url: format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"),
            port,
            local: Some(local),
        }
    }

    /// The URL of the server (with the password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn local(&self) -> &Local {
        self.local
            .as_ref()
            .expect("only a cluster started by the tests can be stopped and started")
    }

    /// Stops the server (fast shutdown: sessions are cut off).
    pub fn stop(&self) {
        self.local()
            .pg_ctl(&["stop", "-w", "-m", "fast"])
            .expect("stop the server");
    }

    /// Starts the stopped server again, on the same port.
    pub fn start_again(&self) {
        let local = self.local();
        let options = std::fs::read_to_string(local.data.parent().unwrap().join("options"))
            .expect("the server options");
        local
            .pg_ctl(&["start", "-w", "-t", "60", "-o", &options])
            .expect("start the server again");
    }
}

impl Local {
    fn pg_ctl(&self, args: &[&str]) -> Result<String, String> {
        let path = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command
            .args([
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                self.log.to_str().unwrap(),
            ])
            .args(args)
            .stdin(Stdio::null());
        output(&mut command).map_err(|e| {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }
}

/// A shell that waits for end-of-file on its stdin, then stops the server
/// in `dir` and removes `dir`.
fn watchdog(bin: &Path, dir: &Path, as_postgres: bool) -> (Child, ChildStdin) {
    let stop = format!(
        "{} {} -D {}/data stop -m immediate >/dev/null 2>&1",
        if as_postgres {
            "runuser -u postgres --"
        } else {
            ""
        },
        bin.join("pg_ctl").display(),
        dir.display()
    );
    let script = format!("cat >/dev/null; {stop}; rm -rf {}", dir.display());
    // Its own process group, so a Ctrl-C to the tests does not stop it
    // before it has cleaned up.
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start the cleanup watchdog ({e})")));
    let pipe = child.stdin.take().expect("piped stdin");
    (child, pipe)
}
