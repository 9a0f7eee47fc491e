//! Durable, atomic replacement of a file: readers and survivors of a crash
//! see the old content or the new, never a mix and never a truncated file.
//!
//! The steps: a temporary file in the target's own directory (a rename is
//! only atomic within one filesystem), write, fsync, rename over the target,
//! fsync the directory so the rename itself survives a power cut. It must
//! never write into the target file in place.
//!
//! A process killed between the first and the last step leaves a hidden
//! `.tmp-*` file behind; readers never look at those.

use std::io::{self, Write};
use std::path::Path;

use crate::permissions;

/// The prefix of temporary files. Stems never start with `.`, so these
/// never collide with a key's files.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Replaces `target` with `contents`, durably. `target`'s directory must
/// exist.
pub(crate) fn replace(target: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = parent(target)?;
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    // tempfile creates 0600 already; say so explicitly, before any secret
    // is written.
    permissions::make_file_private(temp.as_file())?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(target).map_err(|e| e.error)?;
    sync_dir(dir)
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a token file path has no parent directory",
        )
    })
}

/// Makes the directory's entries (a rename, a new or removed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    // Elsewhere a directory cannot be opened like a file; NTFS journals its
    // metadata.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t.json");
        replace(&target, b"one").unwrap();
        replace(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("t.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn replaced_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t.json");
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace(&target, b"new").unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
