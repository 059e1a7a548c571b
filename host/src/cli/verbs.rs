//! Which file serves each client verb: one per resource, as `mod.rs` groups
//! the subcommands.

use super::client::CliError;
use super::render::Out;
use super::{Command, Output, alias, cd, dist, hook, import, invalidate, kv, secret, tail};

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
        Command::Dist(cmd) => dist::run(cmd, output, out, err, interactive).await,
        Command::Alias(cmd) => alias::run(cmd, output, out).await,
        Command::Cd(cmd) => cd::run(cmd, output, out).await,
        Command::Import(cmd) => import::run(cmd, output, out).await,
        Command::Invalidate(args) => invalidate::invalidate(args, output, out, err).await,
        Command::Invalidations(args) => invalidate::invalidations(args, output, out).await,
        Command::Hook(cmd) => hook::run(cmd, output, out).await,
        Command::Kv(cmd) => kv::run(cmd, output, out).await,
        Command::Secret(cmd) => secret::run(cmd, output, out).await,
        Command::Tail(args) => tail::run(args, output, out, err).await,
    }
}
