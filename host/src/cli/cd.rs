//! `edge cd`: continuous deployment: staging copies, traffic policies, and
//! promoting a staging config onto its primary.

use http::Method;
use serde_json::{Value, json};

use super::client::{ApiClient, CliError, seg};
use super::dist::{copy, delete};
use super::files::read_json;
use super::render::{
    Out, gate_text, io, list, print_distribution, print_json, print_policy, traffic_summary,
};
use super::{CdCommand, Output, PolicyCommand, PolicySpec};
use crate::control::views::PolicyView;

pub(super) async fn run(cmd: CdCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
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
                |p: &PolicyView| {
                    vec![
                        p.id.clone(),
                        p.config.staging_distribution_id.clone(),
                        p.config.enabled.to_string(),
                        traffic_summary(&p.config.traffic),
                        gate_text(p.status.state).to_owned(),
                        p.etag.clone(),
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
}
