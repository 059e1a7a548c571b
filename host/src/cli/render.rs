//! How client verbs print what the API answered: tables and `key: value`
//! lines for people, the API's JSON for scripts, ids alone for `$(...)`.

use std::io::Write;

use serde_json::Value;

use super::Output;
use super::client::{CliError, Reply};
use crate::config::policy::TrafficConfig;
use crate::control::DeployStatus;
use crate::control::records::policies::GateState;
use crate::control::views::{DistributionView, List, PolicyView};

pub(super) type Out<'a> = &'a mut dyn Write;

pub(super) fn io(e: std::io::Error) -> CliError {
    CliError::Local(format!("writing output: {e}"))
}

/// A JSON value as a table cell.
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// A policy's split in a few words.
pub(super) fn traffic_summary(traffic: &TrafficConfig) -> String {
    match traffic {
        TrafficConfig::Weight {
            weight,
            session_stickiness,
        } => {
            let pct = weight * 100.0;
            match session_stickiness {
                Some(s) => format!("weight {pct}% sticky {}s/{}s", s.idle_ttl, s.max_ttl),
                None => format!("weight {pct}%"),
            }
        }
        TrafficConfig::Header { header, value } => format!("header {header}: {value}"),
    }
}

/// An API answer read into its view type.
fn view<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, CliError> {
    T::deserialize(v).map_err(|e| {
        CliError::Local(format!(
            "the API answered with a document this edge does not read ({e}): is the host another release?"
        ))
    })
}

/// A text cell for an optional value.
fn opt(v: Option<&str>) -> String {
    v.unwrap_or("-").to_owned()
}

pub(super) fn print_id(out: Out<'_>, v: &Value) -> Result<(), CliError> {
    writeln!(out, "{}", text(&v["id"])).map_err(io)
}

pub(super) fn print_json(out: Out<'_>, v: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CliError::Local(e.to_string()))?;
    writeln!(out, "{text}").map_err(io)
}

pub(super) fn print_distribution(
    out: Out<'_>,
    output: Output,
    reply: &Reply,
) -> Result<(), CliError> {
    let v = reply.json()?;
    match output {
        Output::Json => return print_json(out, &v),
        Output::Id => return print_id(out, &v),
        Output::Table => {}
    }
    let d: DistributionView = view(&v)?;
    let origins: Vec<String> = d
        .config
        .origins
        .iter()
        .map(|o| format!("{}={}", o.id, o.domain_name))
        .collect();
    // Each host serving the config and the revision it serves; `lagging`
    // marks one that does not serve this distribution's revision yet.
    let hosts: Vec<String> = d
        .hosts
        .iter()
        .map(|h| {
            let lag = if h.current { "" } else { " lagging" };
            format!("{}@{}{lag}", h.id, h.revision)
        })
        .collect();
    let status = status_text(d.status);
    fields(
        out,
        &[
            ("id", d.id),
            ("domain_name", d.domain_name),
            ("status", status.to_owned()),
            ("hosts", hosts.join(", ")),
            ("etag", d.etag),
            ("enabled", d.config.enabled.to_string()),
            ("staging", d.staging.to_string()),
            ("aliases", d.config.aliases.join(",")),
            ("origins", origins.join(",")),
            (
                "policy",
                opt(d.config.continuous_deployment_policy_id.as_deref()),
            ),
        ],
    )
}

pub(super) fn print_policy(out: Out<'_>, output: Output, v: &Value) -> Result<(), CliError> {
    match output {
        Output::Json => return print_json(out, v),
        Output::Id => return print_id(out, v),
        Output::Table => {}
    }
    let p: PolicyView = view(v)?;
    let gate = gate_text(p.status.state);
    let mut rows = vec![
        ("id", p.id),
        ("etag", p.etag),
        ("staging", p.config.staging_distribution_id),
        ("enabled", p.config.enabled.to_string()),
        ("traffic", traffic_summary(&p.config.traffic)),
        ("gate", gate.to_owned()),
    ];
    if let Some(reason) = p.status.reason {
        rows.push(("reason", reason));
    }
    fields(out, &rows)
}

/// `key: value` lines, keys aligned.
pub(super) fn fields(out: Out<'_>, rows: &[(&str, String)]) -> Result<(), CliError> {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        writeln!(out, "{k:<width$}  {v}").map_err(io)?;
    }
    Ok(())
}

/// A list response: a table of `columns` with a row per item read into its
/// view type `T`, or the API's JSON, or the items' ids.
pub(super) fn list<T: serde::de::DeserializeOwned>(
    out: Out<'_>,
    output: Output,
    v: &Value,
    columns: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<(), CliError> {
    match output {
        Output::Json => print_json(out, v),
        Output::Id => v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .try_for_each(|item| print_id(out, item)),
        Output::Table => {
            let items: List<T> = view(v)?;
            table(out, columns, items.items.iter().map(row).collect())
        }
    }
}

/// What the automatic gate last did, as a table cell.
pub(super) fn gate_text(state: GateState) -> &'static str {
    match state {
        GateState::Active => "Active",
        GateState::RolledBack => "RolledBack",
    }
}

/// A deployment status as a table cell.
pub(super) fn status_text(status: DeployStatus) -> &'static str {
    match status {
        DeployStatus::Deployed => "Deployed",
        DeployStatus::InProgress => "InProgress",
    }
}

/// Columns aligned to their widest cell.
pub(super) fn table(
    out: Out<'_>,
    columns: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<(), CliError> {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(columns.to_vec())).map_err(io)?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect())).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
