//! `edge dist edit`: a distribution's config in the operator's editor, applied
//! with the ETag it was read at, the editor reopened on a refusal.
//!
//! The editor is `$VISUAL`, else `$EDITOR`, else `vi`, run through `sh -c` so
//! it may carry arguments (`EDITOR="code --wait"`). The file starts with `#`
//! comment lines (ignored, as JSON has no line starting with `#`); an empty
//! file or an unchanged config cancels. A change the API refuses for its
//! content (400, 409) reopens the editor with the error at the top; saving it
//! unchanged again gives up. A change refused because the distribution
//! changed meanwhile (412) is not retried on top of the other write: the edit
//! is kept in a file and the error says how to apply it.

use std::io::Write;
use std::path::{Path, PathBuf};

use http::Method;
use serde_json::Value;

use super::client::{ApiClient, CliError, seg};
use super::files::ConfigDocument;
use super::render::{io, print_distribution};
use super::{Connection, Output};

/// Runs `edge dist edit ID`.
pub async fn run(
    conn: &Connection,
    output: Output,
    id: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let api = ApiClient::new(conn);
    let path = format!("/v1/distributions/{}/config", seg(id));
    let (current, etag) = api.get(&path).await?;
    let etag = etag.unwrap_or_default();
    let local = |e: std::io::Error| CliError::Local(format!("editing {id}: {e}"));
    let file = tempfile::Builder::new()
        .prefix(&format!("edge-{id}-"))
        .suffix(".json")
        .tempfile()
        .map_err(local)?;
    let header = format!(
        "# The config of distribution {id} (ETag {etag}). Save and quit to apply it;\n\
         # lines starting with # are ignored, and an empty file cancels.\n"
    );
    let mut body = pretty(&current)?;
    let mut problem: Option<String> = None;
    loop {
        let mut text = String::new();
        if let Some(problem) = &problem {
            for line in problem.lines() {
                text.push_str(&format!("# error: {line}\n"));
            }
            text.push_str("#\n");
        }
        text.push_str(&header);
        text.push_str(&body);
        std::fs::write(file.path(), &text).map_err(local)?;
        open_editor(file.path())?;
        let edited = std::fs::read(file.path()).map_err(local)?;
        let uncommented = strip_comments(&edited);
        if uncommented.trim().is_empty() {
            return writeln!(out, "edit cancelled: the file was empty").map_err(io);
        }
        if problem.is_some() && uncommented == body {
            let kept = keep(file.path(), id)?;
            return Err(CliError::Local(format!(
                "edit cancelled: the refused change was saved again unchanged; it is kept in {}",
                kept.display()
            )));
        }
        let document = match ConfigDocument::parse(&edited, file.path()) {
            Ok(d) => d,
            Err(e) => {
                problem = Some(e.to_string());
                body = uncommented;
                continue;
            }
        };
        if document.config == current {
            return writeln!(out, "no changes").map_err(io);
        }
        match api
            .send_json(Method::PUT, &path, &document.config, Some(&etag))
            .await
        {
            Ok(reply) => return print_distribution(out, output, &reply),
            Err(CliError::Api { status: 412, .. }) => {
                let kept = keep(file.path(), id)?;
                return Err(CliError::Local(format!(
                    "{id} was changed by another writer while it was being edited, so this edit was not applied; \
                     it is kept in {}: run `edge dist edit {id}` again, or apply the file with \
                     `edge dist update {id} --config {} --from-current` to overwrite the other change",
                    kept.display(),
                    kept.display()
                )));
            }
            Err(e @ CliError::Api { .. }) => {
                let _ = writeln!(err, "error: {e}; reopening the editor");
                problem = Some(e.to_string());
                body = uncommented;
            }
            Err(e) => {
                let kept = keep(file.path(), id)?;
                return Err(CliError::Local(format!(
                    "{e}; the edit is kept in {}",
                    kept.display()
                )));
            }
        }
    }
}

fn pretty(v: &Value) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| CliError::Local(e.to_string()))
}

/// The file without its `#` comment lines.
fn strip_comments(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Copies the edited file somewhere that outlives the command.
fn keep(edited: &Path, id: &str) -> Result<PathBuf, CliError> {
    let kept = std::env::temp_dir().join(format!("edge-edit-{id}-{}.json", std::process::id()));
    std::fs::copy(edited, &kept)
        .map_err(|e| CliError::Local(format!("keeping the edit in {}: {e}", kept.display())))?;
    Ok(kept)
}

/// Runs the operator's editor on `path` and waits for it.
fn open_editor(path: &Path) -> Result<(), CliError> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| CliError::Local(format!("running the editor {editor:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Local(format!(
            "the editor {editor:?} exited with {status}; nothing was applied (set VISUAL or EDITOR to choose another)"
        )))
    }
}
