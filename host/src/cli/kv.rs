//! `edge kv`: the key-value data hooks read, set, listed, read and removed.

use http::Method;
use serde_json::json;

use super::client::{ApiClient, CliError, seg};
use super::files::read_input;
use super::render::{Out, io, list, print_json, text};
use super::{KvCommand, Output};
use crate::control::views::{KvKeyItem, KvNamespaceItem};

pub(super) async fn run(cmd: KvCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
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
                    list(
                        out,
                        output,
                        &v,
                        &["NAMESPACE", "KEYS"],
                        |n: &KvNamespaceItem| vec![n.namespace.clone(), n.keys.to_string()],
                    )
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
                    list(out, output, &v, &["KEY", "SIZE"], |k: &KvKeyItem| {
                        vec![k.key.clone(), k.size.to_string()]
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
