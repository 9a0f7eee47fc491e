//! Private permissions: directories 0700 and files 0600 on Unix, set
//! explicitly rather than left to the umask, and a check that reports files
//! other users can read.
//!
//! It must never loosen a permission, and never change the mode of a file or
//! directory this store did not create: a looser existing file is reported
//! (see the crate docs), not silently "fixed".
//!
//! On other platforms the functions do nothing: files there inherit the
//! access control of the directory.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::path::Path;

/// The mode of token and lock files.
#[cfg(unix)]
pub(crate) const FILE_MODE: u32 = 0o600;
/// The mode of the root and provider directories.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents when `recursive`) as 0700. Returns
/// whether `dir` itself was created; an existing directory is left as it is.
pub(crate) fn create_private_dir(dir: &Path, recursive: bool) -> io::Result<bool> {
    let mut builder = DirBuilder::new();
    builder.recursive(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound && recursive => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent, true)?;
            }
            return create_private_dir(dir, false);
        }
        Err(e) => return Err(e),
    }
    // The umask may have removed bits from 0700 (never added any): set the
    // exact mode so the owner can use the directory.
    set_mode(dir, DIR_MODE)?;
    Ok(true)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Makes an open file 0600, whatever mode it was created with.
pub(crate) fn make_file_private(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Open options that create a missing file as 0600 (the umask can only make
/// that stricter).
pub(crate) fn private_open_options() -> fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = fs::OpenOptions::new();
        options.mode(FILE_MODE);
        options
    }
    #[cfg(not(unix))]
    fs::OpenOptions::new()
}

/// The mode of `metadata` when group or other users have any access to it,
/// `None` when it is private (or on platforms without Unix modes).
pub(crate) fn loose_mode(metadata: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_private_directories_with_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/c");
        assert!(create_private_dir(&dir, true).unwrap());
        for d in [tmp.path().join("a"), tmp.path().join("a/b"), dir.clone()] {
            assert_eq!(
                fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                DIR_MODE,
                "{d:?}"
            );
        }
        assert!(
            !create_private_dir(&dir, true).unwrap(),
            "an existing directory was created again"
        );
    }

    #[test]
    fn does_not_touch_an_existing_directory() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!create_private_dir(tmp.path(), false).unwrap());
        assert_eq!(
            fs::metadata(tmp.path()).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn reports_group_or_other_access() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let file = private_open_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        assert_eq!(loose_mode(&file.metadata().unwrap()), None);
        for mode in [0o640, 0o604, 0o660, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(loose_mode(&fs::metadata(&path).unwrap()), Some(mode));
        }
        make_file_private(&file).unwrap();
        assert_eq!(loose_mode(&fs::metadata(&path).unwrap()), None);
    }
}
