//! Child processes for the multi-process tests: each child is another
//! process (on a file store) or another "host" (on a database, with its own
//! pool).
//!
//! A test binary re-runs itself: it starts its own executable with the
//! libtest filter `child_process --exact` and an environment variable naming
//! a *role*. Its `child_process` test function calls [`run_if_child`],
//! which plays the role when the variable is set and returns at once
//! otherwise. So `cargo test` builds the child along with the tests, with
//! nothing extra to build or install.
//!
//! Children talk on stdout in lines starting with `@child ` (libtest
//! prints its own lines there too), and listen on stdin. A child is told
//! its role's name, the *place* of the store it works on (a directory, or
//! a database and schema, as its test spells it) and an argument.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// The variable naming the role a child plays.
const ROLE_VAR: &str = "TOKEN_KEEPER_TEST_CHILD_ROLE";
/// The variable giving a child the place of its store.
const PLACE_VAR: &str = "TOKEN_KEEPER_TEST_CHILD_PLACE";
/// The variable giving a child its role's argument.
const ARG_VAR: &str = "TOKEN_KEEPER_TEST_CHILD_ARG";
/// Marks the lines a child writes for its parent.
const PREFIX: &str = "@child ";
/// How long a parent waits for a line before declaring the child stuck.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a child was asked to do.
pub struct Role {
    /// The role's name.
    pub name: String,
    /// The place of the store, as the parent gave it to
    /// [`ChildProcess::spawn`].
    pub place: OsString,
    /// The role's argument (may be empty).
    pub arg: String,
}

/// In a child, runs `play` with its role and exits; in a normal test run,
/// returns at once.
pub fn run_if_child(play: impl FnOnce(Role)) {
    let Ok(name) = std::env::var(ROLE_VAR) else {
        return;
    };
    let place = std::env::var_os(PLACE_VAR).expect("a child needs the place of its store");
    let arg = std::env::var(ARG_VAR).unwrap_or_default();
    play(Role { name, place, arg });
    // Never fall through to the parent's tests.
    std::process::exit(0);
}

/// Tells the parent `line` (in a child).
pub fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PREFIX}{line}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

/// Reads the next line from the parent (in a child); `None` at end of input.
pub fn listen() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin()
        .lock()
        .read_line(&mut line)
        .expect("read from the parent")
    {
        0 => None,
        _ => Some(line.trim_end().to_owned()),
    }
}

/// A running child, killed when dropped.
pub struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl ChildProcess {
    /// Starts this test binary as a child playing `role` on the store at
    /// `place`, with `arg`.
    pub fn spawn(role: &str, place: impl AsRef<OsStr>, arg: &str) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE_VAR, role)
            .env(PLACE_VAR, place)
            .env(ARG_VAR, arg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a child process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        // A thread, so that a stuck child fails the test instead of hanging it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may have started the line with "test child_process ... ".
                if let Some(at) = line.find(PREFIX)
                    && send.send(line[at + PREFIX.len()..].to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line the child reports.
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("child {} said nothing for {LINE_TIMEOUT:?}", self.id())
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().expect("wait for the child");
                panic!("child {} exited ({status}) before reporting", self.id())
            }
        }
    }

    /// Waits for the child to report `want`, failing on anything else.
    pub fn expect_line(&mut self, want: &str) {
        let got = self.next_line();
        assert_eq!(got, want, "child {} reported something else", self.id());
    }

    /// Sends `line` to the child.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the child's stdin is open");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    /// Kills the child with SIGKILL (on Unix) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the child");
        self.child.wait().expect("reap the child");
    }

    /// Closes the child's stdin and waits for it to exit, which it must do
    /// successfully.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the child");
        assert!(status.success(), "child {} failed: {status}", self.id());
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // A no-op for a child already reaped.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
