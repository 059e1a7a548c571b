//! `edge tail`: hook log lines and access records from a running host, as
//! they happen (`GET /v1/tail`), one per line.

use serde_json::Value;

use super::client::{ApiClient, CliError, seg};
use super::render::{Out, io};
use super::{Output, TailArgs};

/// One line of the stream, for a person.
fn human(v: &Value) -> Option<String> {
    let s = |key: &str| v[key].as_str().unwrap_or("-").to_owned();
    match v["kind"].as_str()? {
        "log" => Some(format!(
            "{} {} {} {} {}: {}",
            s("time"),
            s("distribution"),
            s("hook"),
            s("event"),
            s("request_id"),
            s("line")
        )),
        "access" => Some(format!(
            "{}T{}Z {} {} {} {} {}{}{} {:.1} ms (hooks {:.1} ms) {}",
            s("date"),
            s("time"),
            s("distribution_id"),
            v["sc_status"],
            s("result_type"),
            s("cs_method"),
            s("host_header"),
            s("cs_uri_stem"),
            v["cs_uri_query"]
                .as_str()
                .map_or(String::new(), |q| format!("?{q}")),
            v["time_taken"].as_f64().unwrap_or(0.0) * 1000.0,
            v["hook_time_ms"].as_f64().unwrap_or(0.0),
            s("request_id"),
        )),
        "dropped" => Some(format!(
            "... {} lines dropped: this tail fell behind",
            v["lines"]
        )),
        _ => None,
    }
}

pub(super) async fn run(
    args: TailArgs,
    output: Output,
    out: Out<'_>,
    err: Out<'_>,
) -> Result<(), CliError> {
    let api = ApiClient::new(&args.conn);
    let mut query = Vec::new();
    for (name, value) in [
        ("distribution", &args.distribution),
        ("hook", &args.hook),
        ("status", &args.status),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", seg(value)));
        }
    }
    let path = if query.is_empty() {
        "/v1/tail".to_owned()
    } else {
        format!("/v1/tail?{}", query.join("&"))
    };
    let mut shown = 0usize;
    api.stream(&path, |line| {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| CliError::Local(format!("the tail sent a line that is not JSON: {e}")))?;
        if value["kind"] == "start" {
            writeln!(err, "watching (Ctrl-C to stop)").map_err(io)?;
            return Ok(true);
        }
        match output {
            Output::Json => {
                out.write_all(line).map_err(io)?;
                writeln!(out).map_err(io)?;
            }
            Output::Table | Output::Id => {
                if let Some(text) = human(&value) {
                    writeln!(out, "{text}").map_err(io)?;
                }
            }
        }
        out.flush().map_err(io)?;
        shown += 1;
        Ok(args.limit.is_none_or(|limit| shown < limit))
    })
    .await
}
