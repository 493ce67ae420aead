//! `sluice serve`: serve the home's models over REST until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use sluice_runtime::serve::conn::Drained;
use sluice_runtime::serve::predictor::PoolConfig;
use sluice_runtime::serve::{ServeConfig, Server};

use super::open_store;
use crate::Paths;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; use 0.0.0.0:PORT to accept other machines
    #[arg(long, default_value = "127.0.0.1:8501", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// Serve only this model (repeatable) [default: every model of the home]
    #[arg(long = "model", value_name = "NAME")]
    models: Vec<String>,
    /// Bearer token of the admin API [default: made once, kept in <home>/serve/admin-token]
    #[arg(
        long,
        env = "SLUICE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// Most predictor instances per model version
    #[arg(long, value_name = "N")]
    max_instances: Option<usize>,
    /// Memory each predictor instance may use, in MiB
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    instance_memory: u64,
    /// Longest a single prediction may run
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    deadline: Duration,
    /// Drop an instance unused for this long
    #[arg(long, default_value = "60s", value_parser = duration, value_name = "DURATION")]
    idle_timeout: Duration,
    /// Unload a model version nobody asked for in this long (`never` to keep it)
    #[arg(long, default_value = "15m", value_parser = optional_duration, value_name = "DURATION")]
    scale_to_zero: Unless,
    /// Largest request body, in KiB, as sent and once decoded
    #[arg(long, default_value_t = 16 * 1024, value_name = "KIB")]
    body_limit: usize,
    /// Memory requests may hold at once, in MiB: their bodies as they arrive and are
    /// decoded, and twice the tensors read from them; more wait, then get 503
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    body_budget: usize,
    /// Longest a request body may take to arrive, or an answer to be taken by its client
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    body_timeout: Duration,
    /// Longest from a request's first byte until its headers are complete
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    header_timeout: Duration,
    /// Close a connection idle this long between requests
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DURATION")]
    keep_alive_timeout: Duration,
    /// On Ctrl-C or SIGTERM, longest to let requests in flight finish before exiting
    #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
    drain_timeout: Duration,
    /// Also serve the web UI (runs, tasks, artifacts, models) under /ui/
    #[arg(long)]
    ui: bool,
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("expected a duration such as 30s or 5m: {e}"))
}

/// A duration, or `never`.
#[derive(Clone, Copy)]
struct Unless(Option<Duration>);

fn optional_duration(s: &str) -> Result<Unless, String> {
    if s == "never" {
        Ok(Unless(None))
    } else {
        duration(s).map(|d| Unless(Some(d)))
    }
}

/// Keeps every allocation of 1 MiB or more in its own mapping, returned to the system
/// when freed. glibc otherwise raises its mmap threshold after each large free (up to
/// 32 MiB), after which request-sized buffers come from arenas it never gives back: one
/// burst of large requests would pin its peak memory for the life of the server
/// (measured: 95 MiB left resident after four 16 MiB bodies, 25 MiB with this).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn give_back_large_buffers() {
    // SAFETY: `mallopt` only sets a parameter of the allocator, is thread-safe in glibc,
    // and its return value (0 when refused) leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_large_buffers() {}

pub fn run(paths: &Paths, args: Args) -> Result<ExitCode> {
    give_back_large_buffers();
    let store = open_store(paths)?;
    let args_drain = args.drain_timeout;
    let cache_dir = paths.cache_dir.clone().unwrap_or_else(|| store.cache_dir());
    let mut pool = PoolConfig {
        memory: args.instance_memory << 20,
        deadline: args.deadline,
        ..PoolConfig::default()
    };
    if let Some(n) = args.max_instances {
        anyhow::ensure!(n > 0, "--max-instances must be at least 1");
        pool.max_instances = n;
    }
    anyhow::ensure!(args.body_limit > 0, "--body-limit must be at least 1 KiB");
    anyhow::ensure!(
        args.body_budget << 20 >= args.body_limit << 10,
        "--body-budget must hold at least one body of --body-limit"
    );
    let config = ServeConfig {
        bind: args.bind,
        admin_token: args.admin_token,
        body_limit: args.body_limit << 10,
        body_budget: args.body_budget << 20,
        body_timeout: args.body_timeout,
        header_timeout: args.header_timeout,
        keep_alive_timeout: args.keep_alive_timeout,
        drain_timeout: args.drain_timeout,
        pool,
        idle_timeout: args.idle_timeout,
        scale_to_zero: args.scale_to_zero.0,
        models: (!args.models.is_empty()).then_some(args.models),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let home = store.home().to_owned();
    drop(store);
    let ui = args.ui;
    let bind = args.bind;
    let drained = runtime.block_on(async {
        let server = Server::start(&home, &cache_dir, config).await?;
        let pages = match ui {
            true => Some(sluice_ui::router(sluice_ui::UiConfig {
                any_host: !bind.ip().is_loopback(),
                ..sluice_ui::UiConfig::new(&home)
            })?),
            false => None,
        };
        let url = format!("http://{}", server.local_addr());
        let names = server.registry().names();
        if names.is_empty() {
            outln!("no models yet; a pipeline with a deploy section publishes one");
        }
        for name in &names {
            if let Some((versions, default, _)) = server.registry().describe(name) {
                outln!(
                    "{name}: version {default} of {} (TF Serving: {url}/v1/models/{name}:predict, OIP: {url}/v2/models/{name}/infer)",
                    versions.len()
                );
            }
        }
        outln!("serving on {url} (metrics at {url}/metrics); Ctrl-C stops");
        match pages {
            Some(pages) => {
                outln!("UI at {url}/ui/");
                anyhow::Ok(server.run_with(pages, shutdown_signal()).await)
            }
            None => anyhow::Ok(server.run(shutdown_signal()).await),
        }
    })?;
    // A prediction still running past the drain deadline does not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match drained {
        Drained::All => outln!("stopped"),
        Drained::Cut(open) => outln!(
            "stopped; {open} connection(s) still open after the {} drain were closed",
            humantime::format_duration(args_drain)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight.
pub(crate) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    errln!("stopping: finishing the requests in flight");
}
