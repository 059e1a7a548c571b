//! What each client verb sends to the control API and prints.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use super::client::{ApiClient, CliError, seg};
use super::files::{ConfigDocument, read_input, read_json};
use super::render::{
    Out, fields, io, list, print_distribution, print_id, print_json, print_policy, table, text,
    traffic_summary,
};
use super::{
    AliasCommand, CdCommand, Command, Connection, DistCommand, HookCommand, ImportCommand,
    KvCommand, Output, PolicyCommand, PolicySpec,
};

/// Runs one client verb. `interactive` says whether `out` is a terminal (for
/// `wait-deployed`'s progress indicator).
pub async fn run(
    command: Command,
    output: Output,
    out: Out<'_>,
    err: Out<'_>,
    interactive: bool,
) -> Result<(), CliError> {
    match command {
        Command::Serve(_) | Command::Demo(_) | Command::Dev(_) => Err(CliError::Local(
            "serve, demo and dev run a host; they are not client verbs".into(),
        )),
        Command::Dist(cmd) => dist(cmd, output, out, err, interactive).await,
        Command::Alias(AliasCommand::List { conn }) => {
            let api = ApiClient::new(&conn);
            let (v, _) = api.get("/v1/distributions").await?;
            let mut rows: Vec<Value> = Vec::new();
            for d in v["items"].as_array().into_iter().flatten() {
                for alias in d["aliases"].as_array().into_iter().flatten() {
                    rows.push(json!({
                        "alias": alias,
                        "distribution": d["id"],
                        "domain_name": d["domain_name"],
                        "enabled": d["enabled"],
                    }));
                }
            }
            rows.sort_by_key(|r| text(&r["alias"]));
            match output {
                Output::Json => print_json(out, &json!({ "items": rows, "quantity": rows.len() })),
                Output::Id => rows
                    .iter()
                    .try_for_each(|r| writeln!(out, "{}", text(&r["alias"])).map_err(io)),
                Output::Table => table(
                    out,
                    &["ALIAS", "DISTRIBUTION", "ENABLED", "DOMAIN"],
                    rows.iter()
                        .map(|r| {
                            vec![
                                text(&r["alias"]),
                                text(&r["distribution"]),
                                text(&r["enabled"]),
                                text(&r["domain_name"]),
                            ]
                        })
                        .collect(),
                ),
            }
        }
        Command::Alias(AliasCommand::Move { alias, to, conn }) => {
            let api = ApiClient::new(&conn);
            let reply = api
                .send_json(
                    Method::POST,
                    &format!("/v1/distributions/{}/associate-alias", seg(&to)),
                    &json!({ "alias": alias }),
                    None,
                )
                .await?;
            print_distribution(out, output, &reply)
        }
        Command::Cd(cmd) => cd(cmd, output, out).await,
        Command::Import(ImportCommand::Cloudfront {
            file,
            origin_request_policies,
            dry_run,
            conn,
        }) => {
            let files = (file.as_path(), origin_request_policies.as_slice());
            import_cloudfront(&conn, output, files, dry_run, out).await
        }
        Command::Invalidate(args) => {
            if let Some(warning) = shell_expanded(&args.paths) {
                writeln!(err, "{warning}").map_err(io)?;
            }
            let api = ApiClient::new(&args.conn);
            let reply = api
                .send_json(
                    Method::POST,
                    &format!("/v1/distributions/{}/invalidations", seg(&args.id)),
                    &json!({ "paths": args.paths }),
                    None,
                )
                .await?;
            let v = reply.json()?;
            match output {
                Output::Json => print_json(out, &v),
                Output::Id => print_id(out, &v),
                Output::Table => fields(
                    out,
                    &[
                        ("id", text(&v["id"])),
                        ("status", text(&v["status"])),
                        ("paths", text(&v["paths"])),
                        ("dropped", text(&v["dropped"])),
                    ],
                ),
            }
        }
        Command::Invalidations(args) => {
            let api = ApiClient::new(&args.conn);
            let (v, _) = api
                .get(&format!(
                    "/v1/distributions/{}/invalidations",
                    seg(&args.id)
                ))
                .await?;
            list(
                out,
                output,
                &v,
                &["ID", "STATUS", "CREATED", "DROPPED", "PATHS"],
                |i| {
                    vec![
                        text(&i["id"]),
                        text(&i["status"]),
                        text(&i["create_time"]),
                        text(&i["dropped"]),
                        text(&i["paths"]),
                    ]
                },
            )
        }
        Command::Hook(cmd) => hook(cmd, output, out).await,
        Command::Kv(cmd) => kv(cmd, output, out).await,
    }
}

async fn dist(
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
                |d| {
                    vec![
                        text(&d["id"]),
                        text(&d["domain_name"]),
                        text(&d["status"]),
                        text(&d["enabled"]),
                        text(&d["staging"]),
                        text(&d["etag"]),
                        text(&d["aliases"]),
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
async fn delete(
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
async fn copy(
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

async fn cd(cmd: CdCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
    match cmd {
        CdCommand::CreateStaging { id, target, conn } => {
            copy(&conn, output, &id, true, target.as_deref(), out).await
        }
        CdCommand::Policy(PolicyCommand::Create { spec, attach, conn }) => {
            let api = ApiClient::new(&conn);
            let body = policy_body(&spec, None)?;
            let reply = api
                .send_json(
                    Method::POST,
                    "/v1/continuous-deployment-policies",
                    &body,
                    None,
                )
                .await?;
            let policy = reply.json()?;
            if let Some(primary) = attach {
                let path = format!("/v1/distributions/{}/config", seg(&primary));
                let (mut config, etag) = api.get(&path).await?;
                config["continuous_deployment_policy_id"] = policy["id"].clone();
                api.send_json(Method::PUT, &path, &config, etag.as_deref())
                    .await?;
            }
            print_policy(out, output, &policy)
        }
        CdCommand::Policy(PolicyCommand::Detach { primary, conn }) => {
            let api = ApiClient::new(&conn);
            let path = format!("/v1/distributions/{}/config", seg(&primary));
            let (mut config, etag) = api.get(&path).await?;
            let Some(policy) = config["continuous_deployment_policy_id"]
                .as_str()
                .map(str::to_owned)
            else {
                return Err(CliError::Local(format!(
                    "{primary} has no continuous-deployment policy attached"
                )));
            };
            config["continuous_deployment_policy_id"] = Value::Null;
            let reply = api
                .send_json(Method::PUT, &path, &config, etag.as_deref())
                .await?;
            match output {
                Output::Json => print_json(out, &reply.json()?),
                Output::Id => writeln!(out, "{policy}").map_err(io),
                Output::Table => writeln!(
                    out,
                    "detached {policy} from {primary}: every viewer gets {primary}"
                )
                .map_err(io),
            }
        }
        CdCommand::Policy(PolicyCommand::Delete { id, if_match, conn }) => {
            let path = format!("/v1/continuous-deployment-policies/{}", seg(&id));
            delete(&conn, output, &path, &id, if_match, out).await
        }
        CdCommand::Policy(PolicyCommand::Get(args)) => {
            let api = ApiClient::new(&args.conn);
            let (v, _) = api
                .get(&format!(
                    "/v1/continuous-deployment-policies/{}",
                    seg(&args.id)
                ))
                .await?;
            print_policy(out, output, &v)
        }
        CdCommand::Policy(PolicyCommand::List { conn }) => {
            let api = ApiClient::new(&conn);
            let (v, _) = api.get("/v1/continuous-deployment-policies").await?;
            list(
                out,
                output,
                &v,
                &["ID", "STAGING", "ENABLED", "TRAFFIC", "GATE", "ETAG"],
                |p| {
                    vec![
                        text(&p["id"]),
                        text(&p["config"]["staging_distribution_id"]),
                        text(&p["config"]["enabled"]),
                        traffic_summary(&p["config"]["traffic"]),
                        text(&p["status"]["state"]),
                        text(&p["etag"]),
                    ]
                },
            )
        }
        CdCommand::Policy(PolicyCommand::Update {
            id,
            spec,
            if_match,
            conn,
        }) => {
            let api = ApiClient::new(&conn);
            let path = format!("/v1/continuous-deployment-policies/{}", seg(&id));
            // A patch: what the flags do not name keeps its current value,
            // read at the ETag the write is then guarded by.
            let (current, etag) = api.get(&path).await?;
            let body = policy_body(&spec, Some(&current["config"]))?;
            let tag = match (if_match, etag) {
                (Some(tag), _) | (None, Some(tag)) => tag,
                (None, None) => {
                    return Err(CliError::Local(format!("{path} answered without an ETag")));
                }
            };
            let reply = api.send_json(Method::PUT, &path, &body, Some(&tag)).await?;
            print_policy(out, output, &reply.json()?)
        }
        CdCommand::Promote {
            id,
            staging,
            if_match,
            conn,
        } => {
            let api = ApiClient::new(&conn);
            let tags = match if_match {
                Some(tags) => tags,
                None => {
                    let p = api
                        .etag_of(&format!("/v1/distributions/{}", seg(&id)))
                        .await?;
                    let s = api
                        .etag_of(&format!("/v1/distributions/{}", seg(&staging)))
                        .await?;
                    format!("{p}, {s}")
                }
            };
            let reply = api
                .send_json(
                    Method::POST,
                    &format!("/v1/distributions/{}/promote", seg(&id)),
                    &json!({ "staging_distribution_id": staging }),
                    Some(&tags),
                )
                .await?;
            print_distribution(out, output, &reply)
        }
    }
}

/// The policy body from `--config`, or the flags applied to `current` (the
/// policy's config as it is, for an update; `None` to create one): settings
/// no flag names keep their current values.
fn policy_body(spec: &PolicySpec, current: Option<&Value>) -> Result<Value, CliError> {
    if let Some(path) = &spec.config {
        return read_json(path);
    }
    let local = |m: &str| CliError::Local(m.to_owned());
    let mut body = current
        .cloned()
        .unwrap_or_else(|| json!({ "enabled": true }));
    match (&spec.staging, current) {
        (Some(staging), _) => body["staging_distribution_id"] = json!(staging),
        (None, None) => {
            return Err(local(
                "--staging <distribution id> is required to create a policy",
            ));
        }
        (None, Some(_)) => {}
    }
    let traffic = &body["traffic"];
    let stickiness = (traffic["type"] == "weight")
        .then(|| traffic.get("session_stickiness").cloned())
        .flatten();
    match (&spec.weight, &spec.header, &spec.value) {
        (Some(weight), None, _) => {
            let mut t = json!({ "type": "weight", "weight": parse_weight(weight)? });
            if let Some(s) = stickiness {
                t["session_stickiness"] = s;
            }
            body["traffic"] = t;
        }
        (None, Some(header), Some(value)) => {
            body["traffic"] = json!({ "type": "header", "header": header, "value": value });
        }
        (None, None, _) if current.is_some() => {}
        _ => {
            return Err(local(
                "give --weight (a fraction or a percentage), or --header with --value",
            ));
        }
    }
    if spec.idle_ttl.is_some() || spec.max_ttl.is_some() {
        if body["traffic"]["type"] != "weight" {
            return Err(local(
                "--idle-ttl and --max-ttl keep viewers on their arm of a weight policy; this policy selects by header",
            ));
        }
        let current = &body["traffic"]["session_stickiness"];
        let idle = spec
            .idle_ttl
            .or_else(|| current["idle_ttl"].as_u64())
            .ok_or_else(|| local("give --idle-ttl with --max-ttl"))?;
        let max = spec
            .max_ttl
            .or_else(|| current["max_ttl"].as_u64())
            .unwrap_or(idle);
        body["traffic"]["session_stickiness"] = json!({ "idle_ttl": idle, "max_ttl": max });
    }
    if spec.disabled {
        body["enabled"] = json!(false);
    } else if spec.enabled {
        body["enabled"] = json!(true);
    }
    if spec.auto_max_error_rate.is_some()
        || spec.auto_window.is_some()
        || spec.auto_min_requests.is_some()
    {
        let current = body.get("auto").cloned().unwrap_or(Value::Null);
        let rate = spec
            .auto_max_error_rate
            .or_else(|| current["max_error_rate"].as_f64())
            .ok_or_else(|| local("give --auto-max-error-rate to turn the automatic gate on"))?;
        let then = current["then"].as_str().unwrap_or("rollback").to_owned();
        body["auto"] = json!({
            "max_error_rate": rate,
            "min_requests": spec.auto_min_requests
                .or_else(|| current["min_requests"].as_u64())
                .unwrap_or(100),
            "window_s": spec.auto_window
                .or_else(|| current["window_s"].as_u64())
                .unwrap_or(60),
            "then": then,
        });
    }
    Ok(body)
}

/// `0.05` or `5%` → 0.05.
fn parse_weight(text: &str) -> Result<f64, CliError> {
    let bad = || {
        CliError::Local(format!(
            "--weight {text:?}: give a fraction (0.05) or a percentage (5%)"
        ))
    };
    match text.trim().strip_suffix('%') {
        Some(pct) => pct
            .trim()
            .parse::<f64>()
            .map(|p| p / 100.0)
            .map_err(|_| bad()),
        None => text.trim().parse::<f64>().map_err(|_| bad()),
    }
}

async fn hook(cmd: HookCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
    match cmd {
        HookCommand::Test(mut args) => {
            args.json |= output == Output::Json;
            super::hook_test::run(args, out).await
        }
        HookCommand::Delete { name, conn } => {
            let api = ApiClient::new(&conn);
            api.send(
                Method::DELETE,
                &format!("/v1/hooks/{}", seg(&name)),
                None,
                None,
            )
            .await?;
            match output {
                Output::Json => print_json(out, &json!({ "deleted": name })),
                Output::Table | Output::Id => writeln!(out, "deleted hook {name}").map_err(io),
            }
        }
        HookCommand::New { name, dir, lang } => {
            let made = super::scaffold::new_plugin(&name, &dir, lang)?;
            writeln!(out, "{}", made.display()).map_err(io)
        }
        HookCommand::Build { dir, target_dir } => {
            let wasm = tokio::task::spawn_blocking(move || {
                super::scaffold::build_plugin(&dir, target_dir.as_deref())
            })
            .await
            .map_err(|e| CliError::Local(e.to_string()))??;
            writeln!(out, "{}", wasm.display()).map_err(io)
        }
        HookCommand::Upload { name, file, conn } => {
            let api = ApiClient::new(&conn);
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Local(format!("reading {}: {e}", file.display())))?;
            let reply = api
                .send(
                    Method::PUT,
                    &format!("/v1/hooks/{}", seg(&name)),
                    Some((bytes, "application/wasm")),
                    None,
                )
                .await?;
            let v = reply.json()?;
            match output {
                Output::Json => print_json(out, &v),
                Output::Table | Output::Id => {
                    writeln!(out, "{} {}", text(&v["name"]), text(&v["version"])).map_err(io)
                }
            }
        }
        HookCommand::List { name: None, conn } => {
            let api = ApiClient::new(&conn);
            let (v, _) = api.get("/v1/hooks").await?;
            list(out, output, &v, &["NAME", "LATEST", "VERSIONS"], |h| {
                vec![text(&h["name"]), text(&h["latest"]), text(&h["versions"])]
            })
        }
        HookCommand::List {
            name: Some(name),
            conn,
        } => {
            let api = ApiClient::new(&conn);
            let (v, _) = api.get(&format!("/v1/hooks/{}", seg(&name))).await?;
            if output == Output::Json {
                return print_json(out, &v);
            }
            let latest = text(&v["latest"]);
            let rows = v["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|ver| {
                    let version = text(&ver["version"]);
                    let mark = if version == latest { "*" } else { "" };
                    vec![
                        version,
                        text(&ver["size"]),
                        text(&ver["uploaded"]),
                        mark.to_owned(),
                    ]
                })
                .collect();
            table(out, &["VERSION", "SIZE", "UPLOADED", "LATEST"], rows)
        }
    }
}

async fn kv(cmd: KvCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
    match cmd {
        KvCommand::Put {
            namespace,
            key,
            value,
            file,
            conn,
        } => {
            let api = ApiClient::new(&conn);
            let bytes = match (value, file) {
                (Some(v), _) => v.into_bytes(),
                (None, Some(path)) => read_input(&path)?,
                (None, None) => return Err(CliError::Local("give a value or --file".into())),
            };
            let reply = api
                .send(
                    Method::PUT,
                    &format!("/v1/kv/{}/{}", seg(&namespace), seg(&key)),
                    Some((bytes, "application/octet-stream")),
                    None,
                )
                .await?;
            match output {
                Output::Json => print_json(out, &reply.json()?),
                Output::Table | Output::Id => writeln!(out, "{namespace}/{key} set").map_err(io),
            }
        }
        KvCommand::List { namespace, conn } => {
            let api = ApiClient::new(&conn);
            match namespace {
                None => {
                    let (v, _) = api.get("/v1/kv").await?;
                    list(out, output, &v, &["NAMESPACE", "KEYS"], |n| {
                        vec![text(&n["namespace"]), text(&n["keys"])]
                    })
                }
                Some(ns) => {
                    let (v, _) = api.get(&format!("/v1/kv/{}", seg(&ns))).await?;
                    if output == Output::Id {
                        return v["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .try_for_each(|k| writeln!(out, "{}", text(&k["key"])).map_err(io));
                    }
                    list(out, output, &v, &["KEY", "SIZE"], |k| {
                        vec![text(&k["key"]), text(&k["size"])]
                    })
                }
            }
        }
        KvCommand::Get {
            namespace,
            key,
            conn,
        } => {
            let api = ApiClient::new(&conn);
            let reply = api
                .send(
                    Method::GET,
                    &format!("/v1/kv/{}/{}", seg(&namespace), seg(&key)),
                    None,
                    None,
                )
                .await?;
            out.write_all(&reply.body).map_err(io)?;
            if !reply.body.ends_with(b"\n") && output != Output::Json {
                writeln!(out).map_err(io)?;
            }
            Ok(())
        }
        KvCommand::Delete {
            namespace,
            key,
            conn,
        } => {
            let api = ApiClient::new(&conn);
            api.send(
                Method::DELETE,
                &format!("/v1/kv/{}/{}", seg(&namespace), seg(&key)),
                None,
                None,
            )
            .await?;
            match output {
                Output::Json => {
                    print_json(out, &json!({ "deleted": format!("{namespace}/{key}") }))
                }
                Output::Table | Output::Id => {
                    writeln!(out, "{namespace}/{key} deleted").map_err(io)
                }
            }
        }
    }
}

/// A warning when `paths` look like an unquoted glob the shell expanded
/// (`edge invalidate E1 /img/*` run where `/img` exists gives its files):
/// several paths, each an existing file or directory on this machine.
fn shell_expanded(paths: &[String]) -> Option<String> {
    let local: Vec<&String> = paths
        .iter()
        .filter(|p| !p.contains('*') && Path::new(p.as_str()).exists())
        .collect();
    (paths.len() > 1 && local.len() == paths.len()).then(|| {
        format!(
            "warning: {} look like files of this machine: did the shell expand an unquoted glob? Quote globs: edge invalidate ID '/img/*'",
            local
                .iter()
                .take(4)
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_read_as_fractions_or_percentages() {
        assert_eq!(parse_weight("0.05").unwrap(), 0.05);
        assert_eq!(parse_weight("5%").unwrap(), 0.05);
        assert_eq!(parse_weight("0.01 %").unwrap(), 0.0001);
        assert!(parse_weight("five").is_err());
    }

    #[test]
    fn shell_expanded_globs_are_noticed() {
        let expanded: Vec<String> = ["/bin", "/etc", "/usr"].map(String::from).into();
        let warning = shell_expanded(&expanded).expect("a warning");
        assert!(
            warning.contains("/bin") && warning.contains("'/img/*'"),
            "{warning}"
        );
        // A quoted glob, or paths that are not this machine's files, pass.
        assert!(shell_expanded(&["/img/*".to_owned()]).is_none());
        let site: Vec<String> = ["/index.html", "/about/team.html"].map(String::from).into();
        assert!(shell_expanded(&site).is_none());
        assert!(
            shell_expanded(&["/etc".to_owned()]).is_none(),
            "one path alone is not flagged"
        );
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("E1"), "E1");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["ID", "X"],
            vec![vec!["LONGER".into(), "1".into()]],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ID      X\nLONGER  1\n");
    }
}
