//! `edge hook`: components uploaded, listed and deleted; `test`, `new` and
//! `build` run locally (`hook_test.rs`, `scaffold.rs`).

use http::Method;
use serde_json::json;

use super::client::{ApiClient, CliError, seg};
use super::render::{Out, io, list, print_json, table, text};
use super::{HookCommand, Output};
use crate::control::views::HookItem;

pub(super) async fn run(cmd: HookCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
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
            list(
                out,
                output,
                &v,
                &["NAME", "LATEST", "VERSIONS"],
                |h: &HookItem| vec![h.name.clone(), h.latest.clone(), h.versions.to_string()],
            )
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
                        text(&ver["world"]),
                        mark.to_owned(),
                    ]
                })
                .collect();
            table(
                out,
                &["VERSION", "SIZE", "UPLOADED", "WORLD", "LATEST"],
                rows,
            )
        }
    }
}
