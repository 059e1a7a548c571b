//! `edge invalidate` and `edge invalidations`: dropping cached objects by
//! path or tag (or, soft, marking them stale), and the distribution's
//! invalidations.

use std::path::Path;

use http::Method;
use serde_json::json;

use super::client::{ApiClient, CliError, seg};
use super::render::{Out, fields, io, list, print_id, print_json, text};
use super::{IdArgs, InvalidateArgs, Output};
use crate::control::views::{InvalidationStatus, InvalidationView};

/// `edge invalidate`: drops the paths, warning first when the shell seems
/// to have expanded an unquoted glob.
pub(super) async fn invalidate(
    args: InvalidateArgs,
    output: Output,
    out: Out<'_>,
    err: Out<'_>,
) -> Result<(), CliError> {
    if let Some(warning) = shell_expanded(&args.paths) {
        writeln!(err, "{warning}").map_err(io)?;
    }
    let api = ApiClient::new(&args.conn);
    let reply = api
        .send_json(
            Method::POST,
            &format!("/v1/distributions/{}/invalidations", seg(&args.id)),
            &json!({ "paths": args.paths, "tags": args.tags, "soft": args.soft }),
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
                ("tags", text(&v["tags"])),
                ("soft", text(&v["soft"])),
                ("dropped", text(&v["dropped"])),
            ],
        ),
    }
}

/// `edge invalidations`: a distribution's invalidations, newest first.
pub(super) async fn invalidations(
    args: IdArgs,
    output: Output,
    out: Out<'_>,
) -> Result<(), CliError> {
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
        &["ID", "STATUS", "CREATED", "DROPPED", "PATHS", "TAGS"],
        |i: &InvalidationView| {
            let status = match i.status {
                InvalidationStatus::Completed => "Completed",
                InvalidationStatus::InProgress => "InProgress",
            };
            vec![
                i.id.clone(),
                status.to_owned(),
                i.create_time.clone(),
                if i.soft {
                    format!("{} (soft)", i.dropped)
                } else {
                    i.dropped.to_string()
                },
                i.paths.join(","),
                i.tags.join(","),
            ]
        },
    )
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
