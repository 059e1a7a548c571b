//! This host's name among the fleet's: `--host-id`, or one generated once and kept in `<data-dir>/host-id`.
//!
//! Two hosts sharing a store must not share a name: the fleet's host list
//! would show one of them and `Deployed` would wait for only one. A host
//! started without `--host-id` takes the name in its data dir, generating
//! `<hostname>-<6 hex digits>` the first time, so the name stays the same
//! across restarts and differs between hosts.
//!
//! Beside the name, a host tells the fleet its instance: a digest of the
//! machine's hostname and the data dir's path. A report under this host's
//! name from the same instance is this host's own (from before a crash, or
//! the host it takes over from); from another instance, another live host
//! already uses the name.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

/// The file under the data dir that keeps a generated id.
pub const HOST_ID_FILE: &str = "host-id";

/// Who this host is among the fleet's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    pub id: String,
    /// Where the id was kept, when it was not given.
    pub kept_in: Option<PathBuf>,
    /// Tells this host's own reports from another host's under the same id.
    pub instance: String,
}

/// The identity of a host on `data_dir`: `given` unless it is empty, else
/// the id kept in the data dir (generated on first use).
pub fn resolve(data_dir: &Path, given: &str) -> std::io::Result<HostIdentity> {
    let (id, kept_in) = if given.is_empty() {
        let path = data_dir.join(HOST_ID_FILE);
        (load_or_generate(&path)?, Some(path))
    } else {
        (given.to_owned(), None)
    };
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let mut digest = sha2::Sha256::new();
    digest.update(hostname().as_bytes());
    digest.update([0]);
    digest.update(dir.as_os_str().as_encoded_bytes());
    let instance = crate::ids::hex(&digest.finalize()[..8]);
    Ok(HostIdentity {
        id,
        kept_in,
        instance,
    })
}

/// The id in `path`, or a new one written there (mode 0600).
fn load_or_generate(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(kept) if !kept.trim().is_empty() => return Ok(kept.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut suffix = [0u8; 3];
    crate::ids::random_bytes(&mut suffix);
    let id = format!("{}-{}", id_safe(&hostname()), crate::ids::hex(&suffix));
    // Written whole under another name, then renamed: a crash leaves either
    // no file or the whole id.
    let partial = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&partial)?;
    file.write_all(format!("{id}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(id)
}

/// The machine's host name, or `edge` when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "edge".to_owned())
}

/// `name` as a piece of an id: lower-case letters, digits and `-` (it goes
/// into `via` headers and etcd keys), at most 40 characters.
fn id_safe(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "edge".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_id_is_kept_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = resolve(dir.path(), "").expect("generated");
        let path = dir.path().join(HOST_ID_FILE);
        assert_eq!(first.kept_in.as_deref(), Some(path.as_path()));
        let (name, suffix) = first.id.rsplit_once('-').expect("<hostname>-<hex>");
        assert_eq!(name, id_safe(&hostname()));
        assert_eq!(suffix.len(), 6);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{suffix}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("kept").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(resolve(dir.path(), "").expect("kept"), first);

        let other = tempfile::tempdir().expect("temp dir");
        let second = resolve(other.path(), "").expect("generated");
        assert_ne!(second.id, first.id);
        assert_ne!(second.instance, first.instance);
    }

    #[test]
    fn a_given_id_wins_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let given = resolve(dir.path(), "edge-7").expect("given");
        assert_eq!(given.id, "edge-7");
        assert_eq!(given.kept_in, None);
        assert!(!dir.path().join(HOST_ID_FILE).exists());
        // The instance is the data dir's, whatever the id.
        assert_eq!(
            resolve(dir.path(), "").expect("generated").instance,
            given.instance
        );
    }

    #[test]
    fn host_names_become_id_safe() {
        assert_eq!(id_safe("Web-01.Example.COM"), "web-01-example-com");
        assert_eq!(id_safe("..."), "edge");
        assert_eq!(id_safe(&"a".repeat(60)).len(), 40);
    }
}
