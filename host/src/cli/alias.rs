//! `edge alias`: every alias and its distribution, and moving one atomically.

use http::Method;
use serde_json::{Value, json};

use super::client::{ApiClient, CliError, seg};
use super::render::{Out, io, print_distribution, print_json, table, text};
use super::{AliasCommand, Output};

pub(super) async fn run(cmd: AliasCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
    match cmd {
        AliasCommand::List { conn } => {
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
        AliasCommand::Move { alias, to, conn } => {
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
    }
}
