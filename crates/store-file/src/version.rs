//! Version and login sequence numbers that only ever grow for a key, even
//! across `delete` and re-creation.
//!
//! A new number is the largest of:
//!
//! - the current one + 1 (the ordinary case; a delete leaves a tombstone
//!   that keeps the version and the sequence counter);
//! - the key's **high-water mark** + 1: the largest version a deleted token
//!   file of this key had under schema 1, which removed the file on delete
//!   and kept the mark in the key's write-lock file (never deleted). Schema 2
//!   only reads it, so that a key deleted before the upgrade never reuses a
//!   version;
//! - the wall clock in microseconds since the Unix epoch, which keeps
//!   numbers growing even if an account file is lost (moved aside by a
//!   person after it was damaged, a directory wiped by hand).
//!
//! The mark is stored as fixed-width decimal text written in one `pwrite` at
//! offset 0, so it was never half-updated by a killed process.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::{SystemTime, UNIX_EPOCH};

/// Width of the decimal mark: `u64::MAX` has 20 digits.
const MARK_WIDTH: usize = 20;

/// The version to write next.
pub(crate) fn next(current: Option<u64>, high_water: u64, now: SystemTime) -> u64 {
    let clock = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    current
        .unwrap_or(0)
        .max(high_water)
        .saturating_add(1)
        .max(clock)
}

/// Reads the high-water mark from a write-lock file. An empty file (never
/// deleted) is 0; `Err` with the unreadable text when it is not a number.
pub(crate) fn read_high_water(mut file: &File) -> io::Result<Result<u64, String>> {
    let mut bytes = Vec::with_capacity(MARK_WIDTH + 1);
    file.seek(SeekFrom::Start(0))?;
    file.take(64).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Ok(0));
    }
    Ok(trimmed
        .parse::<u64>()
        .map_err(|_| trimmed.chars().take(32).collect()))
}

/// Durably records `version` as the high-water mark, as schema 1 did.
#[cfg(test)]
pub(crate) fn write_high_water(file: &File, version: u64) -> io::Result<()> {
    let text = format!("{version:0MARK_WIDTH$}\n");
    write_at_start(file, text.as_bytes())?;
    file.sync_data()
}

#[cfg(all(test, unix))]
fn write_at_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, 0)
}

#[cfg(all(test, not(unix)))]
fn write_at_start(mut file: &File, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn at_micros(micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(micros)
    }

    #[test]
    fn grows_past_the_current_version_the_mark_and_the_clock() {
        assert_eq!(next(Some(10), 0, at_micros(5)), 11);
        assert_eq!(next(None, 10, at_micros(5)), 11);
        assert_eq!(next(Some(3), 10, at_micros(5)), 11);
        assert_eq!(next(Some(3), 0, at_micros(500)), 500);
        assert_eq!(next(None, 0, UNIX_EPOCH - Duration::from_secs(1)), 1);
        assert_eq!(next(Some(u64::MAX), 0, at_micros(1)), u64::MAX);
    }

    #[test]
    fn the_mark_round_trips_and_starts_at_zero() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(read_high_water(&file).unwrap(), Ok(0));
        write_high_water(&file, 1_764_000_000_123_456).unwrap();
        assert_eq!(read_high_water(&file).unwrap(), Ok(1_764_000_000_123_456));
        write_high_water(&file, 7).unwrap();
        assert_eq!(read_high_water(&file).unwrap(), Ok(7));
    }

    #[test]
    fn a_damaged_mark_is_reported() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"12x4").unwrap();
        assert_eq!(read_high_water(&file).unwrap(), Err("12x4".to_owned()));
    }
}
