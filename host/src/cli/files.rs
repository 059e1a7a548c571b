//! What client verbs read from files: a config or policy document (`-` for
//! stdin), as `get-config` printed it or as written by hand.

use std::io::Read as _;
use std::path::Path;

use serde_json::Value;

use super::client::CliError;

pub(super) fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::Local(format!("reading stdin: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| CliError::Local(format!("reading {}: {e}", path.display())))
}

pub(super) fn read_json(path: &Path) -> Result<Value, CliError> {
    let bytes = read_input(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CliError::Local(format!("{} is not JSON: {e}", path.display())))
}

/// A config file as `update` reads it: the config alone, or the output of
/// `get-config -o json` / `get -o json` (`{"etag", "config", ...}`), with
/// `#` comment lines allowed (JSON has no line that starts with `#`).
#[derive(Debug)]
pub(super) struct ConfigDocument {
    pub config: Value,
    /// The ETag the document was read at, when it says.
    pub etag: Option<String>,
}

impl ConfigDocument {
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, CliError> {
        let text = String::from_utf8_lossy(bytes);
        let mut etag = None;
        let mut json_text = String::with_capacity(text.len());
        for line in text.lines() {
            match line.trim_start().strip_prefix('#') {
                // `# ETag: E4`, as older `get-config` output ended.
                Some(comment) => {
                    if let Some(tag) = comment.trim().strip_prefix("ETag:") {
                        etag = Some(tag.trim().to_owned());
                    }
                }
                None => {
                    json_text.push_str(line);
                    json_text.push('\n');
                }
            }
        }
        let mut config: Value = serde_json::from_str(&json_text)
            .map_err(|e| CliError::Local(format!("{} is not JSON: {e}", path.display())))?;
        if let (Some(inner), Some(tag)) = (config.get("config"), config.get("etag"))
            && inner.is_object()
        {
            etag = tag.as_str().map(str::to_owned).or(etag);
            config = inner.clone();
        }
        Ok(Self { config, etag })
    }
}
