//! `ferry server`: opens the store, makes sure the bootstrap token exists, and serves REST and
//! gRPC (with the agent gateway and its reaper) until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::http::{AppState, HttpOptions};
use crate::metrics::Metrics;
use crate::service::{self, Service};
use crate::store::{self, Store};

/// A server that is up: its bound addresses, and the handle to stop it.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Whether gRPC is served over TLS.
    pub grpc_tls: bool,
    pub service: Service,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl RunningServer {
    /// Stops accepting, closes agent sessions, lets requests in flight finish, and waits for the
    /// listeners and the reaper.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            task.await.context("server task panicked")??;
        }
        Ok(())
    }

    /// Waits until either listener fails or the server is stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        for task in self.tasks {
            task.await.context("server task panicked")??;
        }
        Ok(())
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Opens the configured store and starts serving. Addresses with port 0 get a free port.
pub async fn start(config: &Config) -> anyhow::Result<RunningServer> {
    let store = store::open(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))?;
    start_with_store(config, store).await
}

pub async fn start_with_store(
    config: &Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<RunningServer> {
    // Read before anything starts, so a bad file fails the start with the setting named.
    let tls = config.tls()?.map(|(cert, key)| {
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key))
    });
    let tls_on = tls.is_some();
    let webhook_http = crate::webhooks::client(config.webhook_ca()?.as_deref())?;
    if let Some(secret) = &config.bootstrap_token {
        service::ensure_bootstrap_token(store.as_ref(), secret)
            .await
            .context("creating the bootstrap token")?;
    }
    let gateway = Arc::new(Gateway::new());
    let service = Service::new(store)
        .with_agent_links(gateway.clone())
        .with_agent_timing(config.agent_timing())
        .with_hop_table(config.hop_table())
        .with_perf_settings(config.perf_settings());
    let metrics = Arc::new(Metrics::new());
    let (shutdown, stopped) = watch::channel(false);
    // Before the listeners: leases are extended before any agent can report, and a failure
    // leaves nothing running (dropping `shutdown` ends the reaper).
    let reaper_task = crate::gateway::start_reaper(service.clone(), stopped.clone())
        .await
        .context("preparing the agent gateway")?;
    let scheduler_task =
        crate::scheduler::start(service.clone(), config.scheduler_lease(), stopped.clone())
            .await
            .context("starting the scheduler")?;
    let webhook_task = crate::webhooks::start(service.clone(), webhook_http, stopped.clone());
    let perf_task = crate::service::perf::start_maintenance(service.clone(), stopped.clone());
    let discovery_task = crate::service::start_discovery_schedule(
        service.clone(),
        config.discovery_interval,
        stopped.clone(),
    );

    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding the HTTP address {} (http_addr)", config.http_addr))?;
    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding the gRPC address {} (grpc_addr)", config.grpc_addr))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;

    let options = HttpOptions {
        max_body_bytes: config.max_body_bytes,
        max_inventory_bytes: config.max_inventory_bytes,
        cors_origins: config.cors_origins.clone(),
        console_dir: config.console_dir.clone(),
    };
    let app = crate::http::router(
        AppState {
            service: service.clone(),
            metrics: metrics.clone(),
            closing: stopped.clone(),
        },
        &options,
    );
    let http_task = {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            axum::serve(
                http_listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .context("HTTP server failed")
        })
    };
    let grpc_task = {
        let mut stopped = stopped.clone();
        let grpc = crate::grpc::serve(
            service.clone(),
            gateway.clone(),
            metrics,
            config.max_inventory_bytes,
            grpc_listener,
            tls,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        );
        tokio::spawn(grpc)
    };
    if !tls_on && !grpc_addr.ip().is_loopback() {
        tracing::warn!(
            %grpc_addr,
            "gRPC is served in plain text on a network address: agent secrets and tasks cross \
             the network unencrypted"
        );
    }
    tracing::info!(%http_addr, %grpc_addr, tls = tls_on, "ferry server listening");
    Ok(RunningServer {
        http_addr,
        grpc_addr,
        grpc_tls: tls_on,
        service,
        shutdown,
        tasks: vec![
            http_task,
            grpc_task,
            reaper_task,
            scheduler_task,
            webhook_task,
            perf_task,
            discovery_task,
        ],
    })
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let server = start(config).await?;
    println!(
        "ferry server: REST on http://{} (docs at /docs, web console at /console/), gRPC on {}://{}",
        server.http_addr,
        if server.grpc_tls { "https" } else { "http" },
        server.grpc_addr
    );
    let shutdown = server.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
    });
    server.wait().await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://ferry:secret@db:5432/ferry"),
            "postgres://ferry:***@db:5432/ferry"
        );
        assert_eq!(super::redact_url("sqlite://ferry.db"), "sqlite://ferry.db");
    }
}
