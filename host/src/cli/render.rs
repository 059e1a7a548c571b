//! How client verbs print what the API answered: tables and `key: value`
//! lines for people, the API's JSON for scripts, ids alone for `$(...)`.

use std::io::Write;

use serde_json::Value;

use super::Output;
use super::client::{CliError, Reply};

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

pub(super) fn traffic_summary(t: &Value) -> String {
    match t["type"].as_str() {
        Some("weight") => {
            let pct = t["weight"].as_f64().unwrap_or(0.0) * 100.0;
            match t.get("session_stickiness") {
                Some(s) => format!(
                    "weight {pct}% sticky {}s/{}s",
                    text(&s["idle_ttl"]),
                    text(&s["max_ttl"])
                ),
                None => format!("weight {pct}%"),
            }
        }
        Some("header") => format!("header {}: {}", text(&t["header"]), text(&t["value"])),
        _ => text(t),
    }
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
    let config = &v["config"];
    let origins: Vec<String> = config["origins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| format!("{}={}", text(&o["id"]), text(&o["domain_name"])))
        .collect();
    // Each host serving the config and the revision it serves; `lagging`
    // marks one that does not serve this distribution's revision yet.
    let hosts: Vec<String> = v["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let lag = if h["current"] == false {
                " lagging"
            } else {
                ""
            };
            format!("{}@{}{lag}", text(&h["id"]), text(&h["revision"]))
        })
        .collect();
    fields(
        out,
        &[
            ("id", text(&v["id"])),
            ("domain_name", text(&v["domain_name"])),
            ("status", text(&v["status"])),
            ("hosts", hosts.join(", ")),
            ("etag", text(&v["etag"])),
            ("enabled", text(&config["enabled"])),
            ("staging", text(&v["staging"])),
            ("aliases", text(&config["aliases"])),
            ("origins", origins.join(",")),
            ("policy", text(&config["continuous_deployment_policy_id"])),
        ],
    )
}

pub(super) fn print_policy(out: Out<'_>, output: Output, v: &Value) -> Result<(), CliError> {
    match output {
        Output::Json => return print_json(out, v),
        Output::Id => return print_id(out, v),
        Output::Table => {}
    }
    let mut rows = vec![
        ("id", text(&v["id"])),
        ("etag", text(&v["etag"])),
        ("staging", text(&v["config"]["staging_distribution_id"])),
        ("enabled", text(&v["config"]["enabled"])),
        ("traffic", traffic_summary(&v["config"]["traffic"])),
        ("gate", text(&v["status"]["state"])),
    ];
    if let Some(reason) = v["status"]["reason"].as_str() {
        rows.push(("reason", reason.to_owned()));
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

/// A list response: a table of `columns`, or the API's JSON.
pub(super) fn list(
    out: Out<'_>,
    output: Output,
    v: &Value,
    columns: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> Result<(), CliError> {
    let mut items = v["items"].as_array().into_iter().flatten();
    match output {
        Output::Json => print_json(out, v),
        Output::Id => items.try_for_each(|item| print_id(out, item)),
        Output::Table => table(out, columns, items.map(row).collect()),
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
