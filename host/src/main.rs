//! The `edge` binary: `serve` runs a host, `demo` runs one with built-in origins.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use edge::{HostOptions, RunningHost};

#[derive(Debug, Parser)]
#[command(
    name = "edge",
    version,
    about = "A self-hosted, programmable edge router"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve viewers and the control API from the configs under the data dir.
    Serve(ServeArgs),
    /// Start a host with two built-in origins and a demo distribution, and print
    /// what to try.
    Demo(DemoArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Where the config store and the generated token live.
    #[arg(long, env = "EDGE_DATA_DIR", default_value = "./edge-data")]
    data_dir: PathBuf,
    /// The viewer listener.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The control API listener (keep it on loopback or a private network).
    #[arg(long, env = "EDGE_CONTROL", default_value = "127.0.0.1:9901")]
    control: SocketAddr,
    /// The control API's bearer token; generated into <data-dir>/token if unset.
    #[arg(long, env = "EDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Distributions are named `<id>.<suffix>`.
    #[arg(long, env = "EDGE_DOMAIN_SUFFIX", default_value = "edge.internal")]
    domain_suffix: String,
    /// Bytes the shared cache may hold.
    #[arg(long, env = "EDGE_CACHE_BYTES", default_value_t = 256 << 20)]
    cache_bytes: u64,
    /// Larger bodies stream through without being stored.
    #[arg(long, env = "EDGE_MAX_OBJECT_BYTES", default_value_t = 16 << 20)]
    max_object_bytes: u64,
    /// Names this host in `via` headers.
    #[arg(long, env = "EDGE_HOST_ID", default_value = "edge")]
    host_id: String,
    /// Worker threads serving requests (default: one per core).
    #[arg(long, env = "EDGE_WORKERS")]
    workers: Option<usize>,
    /// Hook instances that may run at once (pooling allocator slots).
    #[arg(long, env = "EDGE_MAX_HOOK_INSTANCES", default_value_t = 1000)]
    max_hook_instances: u32,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, env = "EDGE_CONTROL", default_value = "127.0.0.1:9901")]
    control: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(ServeArgs {
        workers: Some(n), ..
    }) = &cli.command
    {
        builder.worker_threads((*n).max(1));
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Demo(args) => demo(args).await,
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let opts = HostOptions {
        data_dir: args.data_dir,
        listen: args.listen,
        control: args.control,
        token: args.token,
        domain_suffix: args.domain_suffix,
        cache_bytes: args.cache_bytes,
        max_object_bytes: args.max_object_bytes,
        host_id: args.host_id,
        max_hook_instances: args.max_hook_instances,
    };
    let host = RunningHost::start(opts)
        .await
        .context("starting the host")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "viewers: http://{}", host.viewer_addr)?;
    writeln!(out, "control: http://{}", host.control_addr)?;
    if let Some(path) = &host.token_path {
        writeln!(out, "token:   {}", path.display())?;
    }
    drop(out);
    run_until_signal(host).await
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let blue = edge::demo::start_origin("blue")
        .await
        .context("starting the blue origin")?;
    let green = edge::demo::start_origin("green")
        .await
        .context("starting the green origin")?;
    let data_dir = std::env::temp_dir().join(format!("edge-demo-{}", std::process::id()));
    let mut opts = HostOptions::new(&data_dir);
    opts.listen = args.listen;
    opts.control = args.control;
    opts.host_id = "edge-demo".to_owned();
    let host = RunningHost::start(opts)
        .await
        .context("starting the host")?;
    let record = host
        .control
        .plane()
        .create(edge::demo::distribution(blue, green))
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo distribution: {e}"))?;
    let (v, c, t) = (host.viewer_addr, host.control_addr, &host.token);
    let id = &record.stored.id;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Edge demo\n")?;
    writeln!(out, "  viewers      http://{v}")?;
    writeln!(out, "  control API  http://{c}   (token {t})")?;
    writeln!(
        out,
        "  origins      blue http://{blue}   green http://{green}"
    )?;
    writeln!(
        out,
        "  distribution {id}  aliases www.demo.test, *.demo.test  domain {}\n",
        record.stored.domain_name
    )?;
    writeln!(out, "Try:")?;
    writeln!(
        out,
        "  curl -si -H 'Host: www.demo.test' http://{v}/ | grep -i -e x-cache -e age -e hello   # Miss, then Hit"
    )?;
    writeln!(
        out,
        "  curl -si -H 'Host: shop.demo.test' http://{v}/index.html        # the wildcard alias"
    )?;
    writeln!(
        out,
        "  curl -si -H 'Host: www.demo.test' http://{v}/api/time           # green origin, never cached"
    )?;
    writeln!(
        out,
        "  curl -si -H 'Host: nobody.example' http://{v}/                   # 421, no such distribution"
    )?;
    writeln!(
        out,
        "  curl -s -H 'Authorization: Bearer {t}' http://{c}/v1/distributions"
    )?;
    writeln!(
        out,
        "  curl -si -H 'Authorization: Bearer {t}' http://{c}/v1/distributions/{id}/config"
    )?;
    writeln!(out, "  curl -s http://{c}/metrics\n")?;
    writeln!(
        out,
        "Ctrl-C stops the demo and removes its data dir {}",
        data_dir.display()
    )?;
    drop(out);
    let result = run_until_signal(host).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn run_until_signal(host: RunningHost) -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}
