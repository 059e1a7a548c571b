//! The data dir: made absolute, created owner-only (0700), its files 0600.
//!
//! The data dir holds the config store (viewer TLS private keys among it),
//! the control API's token and the handover socket, so nobody but the user
//! the host runs as may read it. A relative `--data-dir` (the default is
//! `./edge-data`) is resolved against the working directory once, at start,
//! so every path derived from it is absolute. An existing dir whose modes are
//! looser is tightened at start, with a warning naming what was changed.

use std::path::{Path, PathBuf};

/// The mode of the data dir and of every directory in it.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in the data dir.
pub const FILE_MODE: u32 = 0o600;

/// A data dir that could not be prepared.
#[derive(Debug, thiserror::Error)]
#[error("data dir {path}: {source}")]
pub struct DataDirError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError {
        path: path.to_owned(),
        source,
    }
}

/// Resolves `dir` against the working directory, creates it (0700) if it is
/// missing, and tightens the modes of it and everything in it. Returns the
/// absolute path.
pub fn prepare(dir: &Path) -> Result<PathBuf, DataDirError> {
    let dir = std::path::absolute(dir).map_err(at(dir))?;
    create(&dir).map_err(at(&dir))?;
    tighten(&dir)?;
    Ok(dir)
}

/// Creates `dir` and its missing parents, the last one with [`DIR_MODE`].
pub fn create(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

/// Sets `dir` to [`DIR_MODE`] and, below it, directories to [`DIR_MODE`] and
/// files to [`FILE_MODE`] wherever they allow more.
#[cfg(unix)]
fn tighten(dir: &Path) -> Result<(), DataDirError> {
    use std::os::unix::fs::PermissionsExt as _;

    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(at(&path))?;
        let kind = meta.file_type();
        let wanted = if kind.is_dir() {
            DIR_MODE
        } else if kind.is_file() {
            FILE_MODE
        } else {
            // Sockets and symlinks: the dir's own mode guards them.
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & !wanted != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                .map_err(at(&path))?;
            tracing::warn!(
                path = %path.display(),
                was = format_args!("{mode:o}"),
                now = format_args!("{wanted:o}"),
                "the data dir holds secrets: tightened a mode that let other users read it"
            );
        }
        if kind.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(at(&path))? {
                pending.push(entry.map_err(at(&path))?.path());
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_dir: &Path) -> Result<(), DataDirError> {
    Ok(())
}

/// Creates `path` (if missing) as an empty file with [`FILE_MODE`], so a
/// library that opens it later never makes it with looser modes.
pub fn touch_private(path: &Path) -> Result<(), DataDirError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(FILE_MODE);
    }
    options.open(path).map(drop).map_err(at(path))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_new_dir_is_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = prepare(&tmp.path().join("a/b")).unwrap();
        assert!(dir.is_absolute());
        assert_eq!(mode(&dir), DIR_MODE);
        touch_private(&dir.join("edge.redb")).unwrap();
        assert_eq!(mode(&dir.join("edge.redb")), FILE_MODE);
    }

    #[test]
    fn an_existing_dir_and_its_files_are_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(dir.join("wasm-cache")).unwrap();
        std::fs::write(dir.join("edge.redb"), b"").unwrap();
        std::fs::write(dir.join("wasm-cache/module"), b"").unwrap();
        for (path, m) in [
            (dir.clone(), 0o755),
            (dir.join("wasm-cache"), 0o775),
            (dir.join("edge.redb"), 0o644),
            (dir.join("wasm-cache/module"), 0o666),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        }
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&dir.join("wasm-cache")), DIR_MODE);
        assert_eq!(mode(&dir.join("edge.redb")), FILE_MODE);
        assert_eq!(mode(&dir.join("wasm-cache/module")), FILE_MODE);
    }

    #[test]
    fn a_relative_dir_is_resolved_against_the_working_directory() {
        let dir = prepare(Path::new("target-relative-probe")).unwrap();
        assert_eq!(
            dir,
            std::env::current_dir()
                .unwrap()
                .join("target-relative-probe")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
