//! Eight processes sharing one file store race on an expired token, with
//! Fitbit's replay window off: exactly one refresh reaches the server, and
//! every process gets the same new token.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use auth_emulator::Emulator;
use support::*;

const PROCESSES: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_make_one_refresh() {
    let w = world(
        StoreKind::File,
        Options {
            emulator: Emulator::builder().with_demo_clients().replay_window(false),
            ..Options::default()
        },
    )
    .await;
    let (_key, original) = seed_expired(&w, "XPROC1").await;
    let dir = w.store_dir().expect("a file store").to_owned();
    let base = w.emulator.base_url().to_string();

    let outputs = tokio::task::spawn_blocking(move || {
        let mut children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_refresh_once"))
                    .args([dir.to_str().unwrap(), &base, "XPROC1"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn refresh_once")
            })
            .collect();
        // Wait until all are ready, then release them together.
        let mut readers = Vec::new();
        for child in &mut children {
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready");
            readers.push(out);
        }
        for child in &mut children {
            child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        }
        children
            .into_iter()
            .zip(readers)
            .map(|(child, mut out)| {
                let mut token = String::new();
                out.read_line(&mut token).unwrap();
                let status = child.wait_with_output().unwrap();
                (
                    status.status.success(),
                    token.trim().to_owned(),
                    String::from_utf8_lossy(&status.stderr).into_owned(),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();

    for (ok, _, stderr) in &outputs {
        assert!(ok, "a process failed: {stderr}");
    }
    let tokens: std::collections::HashSet<_> = outputs.iter().map(|(_, t, _)| t.clone()).collect();
    assert_eq!(tokens.len(), 1, "processes got different tokens");
    assert!(
        !tokens.contains(auth_core::secrecy::ExposeSecret::expose_secret(
            original.access_token()
        ))
    );
    let c = w.emulator.counters();
    assert_eq!(c.fitbit_token_refresh, 1, "refreshes at the server");
    assert_eq!(c.reuse_detections, 0);
}
