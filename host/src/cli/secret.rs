//! `edge secret`: the secrets hooks read, set, listed by name and removed;
//! no verb prints a value.

use http::Method;

use super::client::{ApiClient, CliError, seg};
use super::files::read_input;
use super::render::{Out, io, list, print_json, text};
use super::{Output, SecretCommand};
use crate::control::views::{SecretStoreItem, SecretView};

pub(super) async fn run(cmd: SecretCommand, output: Output, out: Out<'_>) -> Result<(), CliError> {
    match cmd {
        SecretCommand::Put {
            store,
            name,
            file,
            conn,
        } => {
            let api = ApiClient::new(&conn);
            let bytes = read_input(&file)?;
            let reply = api
                .send(
                    Method::PUT,
                    &format!("/v1/secrets/{}/{}", seg(&store), seg(&name)),
                    Some((bytes, "application/octet-stream")),
                    None,
                )
                .await?;
            let written: SecretView = serde_json::from_value(reply.json()?)
                .map_err(|e| CliError::Local(format!("the answer is not a secret: {e}")))?;
            match output {
                Output::Json => print_json(out, &reply.json()?),
                Output::Table | Output::Id => {
                    writeln!(out, "{store}/{name} set (version {})", written.version).map_err(io)
                }
            }
        }
        SecretCommand::List { store, conn } => {
            let api = ApiClient::new(&conn);
            match store {
                None => {
                    let (v, _) = api.get("/v1/secrets").await?;
                    list(
                        out,
                        output,
                        &v,
                        &["STORE", "SECRETS"],
                        |s: &SecretStoreItem| vec![s.store.clone(), s.secrets.to_string()],
                    )
                }
                Some(store) => {
                    let (v, _) = api.get(&format!("/v1/secrets/{}", seg(&store))).await?;
                    if output == Output::Id {
                        return v["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .try_for_each(|s| writeln!(out, "{}", text(&s["name"])).map_err(io));
                    }
                    list(
                        out,
                        output,
                        &v,
                        &["NAME", "VERSION", "UPDATED"],
                        |s: &SecretView| {
                            vec![s.name.clone(), s.version.to_string(), s.updated.clone()]
                        },
                    )
                }
            }
        }
        SecretCommand::Delete { store, name, conn } => {
            let api = ApiClient::new(&conn);
            api.send(
                Method::DELETE,
                &format!("/v1/secrets/{}/{}", seg(&store), seg(&name)),
                None,
                None,
            )
            .await?;
            match output {
                Output::Json => print_json(
                    out,
                    &serde_json::json!({ "deleted": format!("{store}/{name}") }),
                ),
                Output::Table | Output::Id => writeln!(out, "{store}/{name} deleted").map_err(io),
            }
        }
    }
}
