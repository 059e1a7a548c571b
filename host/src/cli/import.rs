//! `edge import cloudfront`: a distribution brought over from CloudFront's
//! config, and what could not be carried.

use std::path::{Path, PathBuf};

use http::Method;
use serde_json::json;

use super::client::{ApiClient, CliError};
use super::files::read_json;
use super::render::{Out, fields, io, print_id, print_json, text};
use super::{Connection, ImportCommand, Output};

pub(super) async fn run(cmd: ImportCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
    match cmd {
        ImportCommand::Cloudfront {
            file,
            origin_request_policies,
            dry_run,
            conn,
        } => {
            let files = (file.as_path(), origin_request_policies.as_slice());
            import_cloudfront(&conn, output, files, dry_run, out).await
        }
    }
}

/// `edge import cloudfront`: converts (the distribution config and the
/// custom origin request policies given), creates (unless a dry run), and
/// names what was left behind.
async fn import_cloudfront(
    conn: &Connection,
    output: Output,
    (file, policy_files): (&Path, &[PathBuf]),
    dry_run: bool,
    out: Out<'_>,
) -> Result<(), CliError> {
    let document = read_json(file)?;
    let mut policies = Vec::with_capacity(policy_files.len());
    for policy in policy_files {
        let read = crate::config::cloudfront::OriginRequestPolicy::read(&read_json(policy)?)
            .map_err(|e| CliError::Local(format!("{}: {e}", policy.display())))?;
        policies.push(read);
    }
    let imported = crate::config::cloudfront::import_with(&document, &policies)
        .map_err(|e| CliError::Local(format!("{}: {e}", file.display())))?;
    let config =
        serde_json::to_value(&imported.config).map_err(|e| CliError::Local(e.to_string()))?;
    let not_carried =
        serde_json::to_value(&imported.not_carried).map_err(|e| CliError::Local(e.to_string()))?;
    if dry_run {
        return print_json(out, &json!({"config": config, "not_carried": not_carried}));
    }
    let reply = ApiClient::new(conn)
        .send_json(Method::POST, "/v1/distributions", &config, None)
        .await?;
    let created = reply.json()?;
    match output {
        Output::Json => {
            return print_json(
                out,
                &json!({"distribution": created, "not_carried": not_carried}),
            );
        }
        Output::Id => return print_id(out, &created),
        Output::Table => {}
    }
    fields(
        out,
        &[
            ("id", text(&created["id"])),
            ("domain_name", text(&created["domain_name"])),
            ("etag", text(&created["etag"])),
            ("aliases", text(&created["config"]["aliases"])),
        ],
    )?;
    if imported.not_carried.is_empty() {
        return writeln!(out, "every setting was carried").map_err(io);
    }
    writeln!(out, "not carried ({}):", imported.not_carried.len()).map_err(io)?;
    for n in &imported.not_carried {
        writeln!(out, "  {}: {}", n.field, n.reason).map_err(io)?;
    }
    Ok(())
}
