//! The `edge` binary: `serve` runs a host, `demo` runs one with built-in
//! origins, and every other verb drives a host's control API (`edge::cli`).
#![forbid(unsafe_code)]

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use edge::cli::{Cli, Command, DemoArgs, ServeArgs};
use edge::{HostOptions, RunningHost};

/// Runs the command; a failure is one line on stderr (what failed, why, and
/// what to do), never a backtrace, and exit code 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, the cause chain after the context: what failed and why.
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {err:#}");
            if let Some(hint) = err
                .chain()
                .find_map(|cause| cause.downcast_ref::<edge::server::StartError>())
                .and_then(edge::server::StartError::hint)
            {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into a log file.
        .with_ansi(std::io::stderr().is_terminal())
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
            Command::Dev(args) => dev(args).await,
            verb => {
                let interactive = std::io::stdout().is_terminal();
                let code = edge::cli::run(
                    verb,
                    cli.output,
                    &mut std::io::stdout().lock(),
                    &mut std::io::stderr().lock(),
                    interactive,
                )
                .await;
                std::process::exit(code)
            }
        }
    })
}

async fn dev(args: edge::cli::dev::DevArgs) -> anyhow::Result<()> {
    let session = edge::cli::dev::DevSession::start(&args)
        .await
        .context("starting edge dev")?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "serving {} ({}) on http://{}; watching {} and {} hook(s); Ctrl-C stops",
        session.id,
        session.domain_name,
        session.host.viewer_addr,
        args.config.display(),
        args.hooks.len()
    )?;
    writeln!(
        out,
        "control: http://{} (token {})",
        session.host.control_addr, session.host.token
    )?;
    writeln!(
        out,
        "try: curl -si -H 'Host: {}' http://{}/",
        session.domain_name, session.host.viewer_addr
    )?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    session.watch(&mut out, stop).await?;
    session.host.shutdown().await;
    Ok(())
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
        cache_dir: args.cache_dir,
        cache_disk_bytes: args.cache_disk_bytes,
        compile_cache_dir: None,
        parallel_compile: false,
        host_id: args.host_id.unwrap_or_default(),
        max_hook_instances: args.max_hook_instances,
        hook_held_memory_mib: args.hook_held_memory_mib,
        hook_threads: args.hook_threads.unwrap_or_else(|| {
            args.workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
                .max(1)
        }),
        origin_ca_file: args.origin_ca_file,
        max_header_count: args.max_header_count,
        max_header_bytes: args.max_header_bytes,
        tls_listen: args.tls_listen,
        tls_cert_dir: args.tls_cert_dir,
        store: args.store,
        store_prefix: args.store_prefix,
        fleet_lease: std::time::Duration::from_secs(args.fleet_lease_seconds.max(1)),
        access_log: args.access_log,
        max_api_body_bytes: args.max_api_body_bytes,
        reuse_port: args.reuse_port,
        offer_handover: true,
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout.max(1)),
        send_timeout: std::time::Duration::from_secs(args.send_timeout.max(1)),
        hook_versions_kept: args.hook_versions_kept.max(1),
        max_hook_store_bytes: args.max_hook_store_bytes,
        allow_domain_fronting: args.allow_domain_fronting,
        cluster_listen: args.cluster_listen,
        cluster_advertise: args.cluster_advertise,
    };
    let (inherited, taken) = if args.take_over {
        let path = edge::server::handover::socket_path(&opts.data_dir);
        let (inherited, taken) =
            tokio::task::spawn_blocking(move || edge::server::handover::take_over(&path))
                .await
                .context("taking over")?
                .context("taking over the running host's listeners")?;
        (Some(inherited), Some(taken))
    } else {
        (None, None)
    };
    let host = RunningHost::start_on(opts, inherited)
        .await
        .context("starting the host")?;
    if let Some(taken) = taken {
        taken
            .serving()
            .context("telling the old host this one serves")?;
    }
    // Where the host listens, for a person or a script; a reader that has
    // gone (`edge serve | head -2`) does not stop the host.
    let banner = (|| -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "viewers: http://{}", host.viewer_addr)?;
        if let Some(addr) = host.tls_addr {
            writeln!(out, "viewers: https://{addr}")?;
        }
        writeln!(out, "control: http://{}", host.control_addr)?;
        if let Some(addr) = host.cluster_addr {
            writeln!(out, "cluster: http://{addr}")?;
        }
        if let Some(path) = &host.token_path {
            writeln!(out, "token:   {}", path.display())?;
        }
        out.flush()
    })();
    if let Err(err) = banner {
        tracing::debug!(error = %err, "stdout is gone; serving on");
    }
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
    writeln!(
        out,
        "For the edge CLI in another terminal:\n  export EDGE_ENDPOINT=http://{c} EDGE_TOKEN={t} ID={id}\n"
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

/// Serves until Ctrl-C, SIGTERM or a new host's takeover, then stops
/// accepting, lets in-flight requests finish (up to 10 s) and returns.
async fn run_until_signal(mut host: RunningHost) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
        () = host.handed_over() => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
    host.shutdown().await;
    Ok(())
}
