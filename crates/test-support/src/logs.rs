//! Captures what code logs through `tracing`, for tests of its warnings
//! and of what it must never log.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

/// The text logged while a [`capture`] guard was alive.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Forgets what was logged so far.
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

struct Writer(Logs);

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends this thread's `tracing` events at `max_level` and up to the
/// returned [`Logs`] until the guard drops. Use it in a current-thread
/// runtime, so that the tasks of the code under test run on the same
/// thread, or with code that hands the subscriber on to its own threads.
pub fn capture(max_level: tracing::Level) -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(max_level)
        .with_ansi(false)
        .with_writer(move || Writer(sink.clone()))
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}
