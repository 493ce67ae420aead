//! `sluice ui`: the web UI over the home's runs and models until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sluice_ui::UiConfig;

use super::open_store;
use crate::Paths;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; the UI shows every run and artifact of the home to whoever
    /// reaches it, so keep it on 127.0.0.1 unless the network is yours
    #[arg(long, default_value = "127.0.0.1:8580", value_name = "ADDR:PORT")]
    bind: SocketAddr,
}

pub fn run(paths: &Paths, args: Args) -> Result<ExitCode> {
    let store = open_store(paths)?;
    let home = store.home().to_owned();
    drop(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let any_host = !args.bind.ip().is_loopback();
    if any_host {
        errln!(
            "warning: the UI listens on {}: whoever reaches it reads every run and artifact of {}",
            args.bind,
            home.display()
        );
    }
    runtime.block_on(async {
        let app = sluice_ui::router(UiConfig {
            any_host,
            ..UiConfig::new(&home)
        })?
        .fallback(sluice_ui::not_found);
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = listener.local_addr()?;
        outln!(
            "UI at http://{addr}/ui/ for {}; changes need the admin token in {}; Ctrl-C stops",
            home.display(),
            home.join("serve/admin-token").display()
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(super::serve::shutdown_signal())
            .await
            .context("the UI server stopped")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
