//! `edge dist`: distributions created, read, updated, copied, deleted, and
//! waited on until deployed.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;

use super::client::{ApiClient, CliError, seg};
use super::files::{ConfigDocument, read_input, read_json};
use super::render::{Out, io, list, print_distribution, print_json, status_text, text};
use super::{Connection, DistCommand, Output};
use crate::control::views::DistributionItem;

pub(super) async fn run(
    cmd: DistCommand,
    output: Output,
    out: Out<'_>,
    err: Out<'_>,
    interactive: bool,
) -> Result<(), CliError> {
    match cmd {
        DistCommand::Create { config, conn } => {
            let api = ApiClient::new(&conn);
            let body = read_json(&config)?;
            let reply = api
                .send_json(Method::POST, "/v1/distributions", &body, None)
                .await?;
            print_distribution(out, output, &reply)
        }
        DistCommand::Get(args) => {
            let api = ApiClient::new(&args.conn);
            let reply = api
                .send(
                    Method::GET,
                    &format!("/v1/distributions/{}", seg(&args.id)),
                    None,
                    None,
                )
                .await?;
            print_distribution(out, output, &reply)
        }
        DistCommand::GetConfig {
            id,
            etag_file,
            conn,
        } => {
            let api = ApiClient::new(&conn);
            let (v, etag) = api
                .get(&format!("/v1/distributions/{}/config", seg(&id)))
                .await?;
            let etag = etag.unwrap_or_default();
            if let Some(path) = &etag_file {
                std::fs::write(path, format!("{etag}\n"))
                    .map_err(|e| CliError::Local(format!("writing {}: {e}", path.display())))?;
            }
            // stdout is the document alone, so `> f.json` is what `update
            // --config f.json` reads back; the ETag goes beside it.
            match output {
                Output::Json => print_json(out, &json!({ "etag": etag, "config": v })),
                Output::Table | Output::Id => {
                    print_json(out, &v)?;
                    writeln!(err, "ETag: {etag}").map_err(io)
                }
            }
        }
        DistCommand::Edit { id, conn } => super::edit::run(&conn, output, &id, out, err).await,
        DistCommand::Enable(args) => set_enabled(&args.conn, output, &args.id, true, out).await,
        DistCommand::Disable(args) => set_enabled(&args.conn, output, &args.id, false, out).await,
        DistCommand::List { conn } => {
            let api = ApiClient::new(&conn);
            let (v, _) = api.get("/v1/distributions").await?;
            list(
                out,
                output,
                &v,
                &[
                    "ID", "DOMAIN", "STATUS", "ENABLED", "STAGING", "ETAG", "ALIASES",
                ],
                |d: &DistributionItem| {
                    vec![
                        d.id.clone(),
                        d.domain_name.clone(),
                        status_text(d.status).to_owned(),
                        d.enabled.to_string(),
                        d.staging.to_string(),
                        d.etag.clone(),
                        d.aliases.join(","),
                    ]
                },
            )
        }
        DistCommand::Update {
            id,
            config,
            if_match,
            from_current,
            conn,
        } => {
            let api = ApiClient::new(&conn);
            let document = ConfigDocument::parse(&read_input(&config)?, &config)?;
            let path = format!("/v1/distributions/{}/config", seg(&id));
            let tag = match (if_match, from_current, document.etag) {
                (Some(tag), _, _) => tag,
                (None, true, _) => api.etag_of(&path).await?,
                (None, false, Some(tag)) => tag,
                (None, false, None) => {
                    return Err(CliError::Local(format!(
                        "{} carries no ETag: give --if-match <ETag> (edge dist get-config {id} prints it on stderr) or --from-current",
                        config.display()
                    )));
                }
            };
            let reply = api
                .send_json(Method::PUT, &path, &document.config, Some(&tag))
                .await?;
            print_distribution(out, output, &reply)
        }
        DistCommand::Copy {
            id,
            staging,
            target,
            conn,
        } => copy(&conn, output, &id, staging, target.as_deref(), out).await,
        DistCommand::Delete { id, if_match, conn } => {
            let path = format!("/v1/distributions/{}", seg(&id));
            delete(&conn, output, &path, &id, if_match, out).await
        }
        DistCommand::WaitDeployed { id, timeout, conn } => {
            wait_deployed(
                &conn,
                output,
                &id,
                Duration::from_secs(timeout),
                out,
                interactive,
            )
            .await
        }
    }
}

/// Deletes the resource at `path` (`id` in what is printed), guarded by
/// `if_match` or the ETag it has now.
pub(super) async fn delete(
    conn: &Connection,
    output: Output,
    path: &str,
    id: &str,
    if_match: Option<String>,
    out: Out<'_>,
) -> Result<(), CliError> {
    let api = ApiClient::new(conn);
    let tag = match if_match {
        Some(tag) => tag,
        None => api.etag_of(path).await?,
    };
    api.send(Method::DELETE, path, None, Some(&tag)).await?;
    match output {
        Output::Json => print_json(out, &json!({ "deleted": id })),
        Output::Table | Output::Id => writeln!(out, "deleted {id}").map_err(io),
    }
}

/// Sets a distribution's `enabled`, guarded by the ETag it was read at.
async fn set_enabled(
    conn: &Connection,
    output: Output,
    id: &str,
    enabled: bool,
    out: Out<'_>,
) -> Result<(), CliError> {
    let api = ApiClient::new(conn);
    let path = format!("/v1/distributions/{}/config", seg(id));
    let (mut config, etag) = api.get(&path).await?;
    config["enabled"] = json!(enabled);
    let reply = api
        .send_json(Method::PUT, &path, &config, etag.as_deref())
        .await?;
    print_distribution(out, output, &reply)
}

/// Copies a distribution; with `target`, then points the copy's default
/// behavior at that origin (a second write, guarded by the copy's ETag).
pub(super) async fn copy(
    conn: &Connection,
    output: Output,
    id: &str,
    staging: bool,
    target: Option<&str>,
    out: Out<'_>,
) -> Result<(), CliError> {
    let api = ApiClient::new(conn);
    let mut reply = api
        .send_json(
            Method::POST,
            &format!("/v1/distributions/{}/copy", seg(id)),
            &json!({ "staging": staging }),
            None,
        )
        .await?;
    if let Some(target) = target {
        let copy = reply.json()?;
        let mut config = copy["config"].clone();
        config["default_cache_behavior"]["target_origin_id"] = json!(target);
        reply = api
            .send_json(
                Method::PUT,
                &format!("/v1/distributions/{}/config", seg(&text(&copy["id"]))),
                &config,
                reply.etag.as_deref(),
            )
            .await?;
    }
    print_distribution(out, output, &reply)
}

/// Polls the distribution until it is `Deployed`: a spinner on a terminal,
/// a line per status change otherwise.
async fn wait_deployed(
    conn: &Connection,
    output: Output,
    id: &str,
    timeout: Duration,
    out: Out<'_>,
    interactive: bool,
) -> Result<(), CliError> {
    const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let api = ApiClient::new(conn);
    let path = format!("/v1/distributions/{}", seg(id));
    let started = Instant::now();
    let mut last = String::new();
    for tick in 0usize.. {
        let (v, etag) = api.get(&path).await?;
        let status = text(&v["status"]);
        let elapsed = started.elapsed().as_secs_f64();
        let etag = etag.unwrap_or_default();
        if status == "Deployed" {
            if interactive {
                write!(out, "\r\x1b[2K").map_err(io)?;
            }
            match output {
                Output::Json => print_json(
                    out,
                    &json!({"id": id, "status": status, "etag": etag, "seconds": elapsed}),
                )?,
                Output::Table | Output::Id => {
                    writeln!(out, "{id} Deployed ({etag}) after {elapsed:.1}s").map_err(io)?
                }
            }
            return Ok(());
        }
        if started.elapsed() >= timeout {
            if interactive {
                writeln!(out).map_err(io)?;
            }
            return Err(CliError::Timeout(format!(
                "{id} is still {status} after {} s",
                timeout.as_secs()
            )));
        }
        if interactive {
            write!(
                out,
                "\r\x1b[2K{} {id} {status} ({etag}) {elapsed:.1}s",
                SPINNER[tick % SPINNER.len()]
            )
            .map_err(io)?;
            out.flush().map_err(io)?;
        } else if status != last {
            writeln!(out, "{id} {status} ({etag})").map_err(io)?;
        }
        last = status;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
