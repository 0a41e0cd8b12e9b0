//! `safeapp run`: the admin server, signal handling, leader election and the controller,
//! put together.
//!
//! Shutdown practises what the operator preaches: on the first SIGTERM/SIGINT it stops
//! taking new work, finishes the reconciles in flight, releases the Lease (so a standby
//! takes over at once instead of after the lease duration) and exits 0; a second signal
//! exits at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use kube::Client;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState};
use crate::controller::{self, RunConfig};
use crate::leader;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimitLayer;

/// Everything `safeapp run` is told on its command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub controller: RunConfig,
    pub metrics_addr: SocketAddr,
    pub leader_elect: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    /// How long the Lease lasts and how early it is renewed.
    pub lease: leader::LeaseTiming,
    /// This replica's identity in the Lease (the pod name in a cluster).
    pub identity: String,
    /// Client-side limit of the reconcile client: requests per second, and burst.
    pub qps: f64,
    pub burst: u32,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot find a Kubernetes configuration: {0}")]
    Config(#[source] kube::config::InferConfigError),
    #[error("cannot connect to Kubernetes: {0}")]
    Connect(#[source] kube::Error),
    #[error("cannot serve the admin endpoints on {addr}: {source}")]
    BindAdmin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up leader election: {0}")]
    Lease(#[source] kube_lease_manager::LeaseManagerError),
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] std::io::Error),
}

/// Sends `true` on the first SIGTERM/SIGINT; exits the process on the second.
fn watch_signals() -> Result<watch::Receiver<bool>, RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        info!("Shutdown requested: finishing the reconciles in flight");
        let _ = tx.send(true);
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        warn!("Second signal: exiting now");
        std::process::exit(1);
    });
    Ok(rx)
}

/// A future that resolves when `rx` first holds `want`; cloneable and `Sync`, as the
/// controller's shutdown hook requires.
fn when(
    rx: &watch::Receiver<bool>,
    want: bool,
) -> futures::future::Shared<futures::future::BoxFuture<'static, ()>> {
    let mut rx = rx.clone();
    async move {
        // A closed channel counts as reached: nothing can change it any more.
        let _ = rx.wait_for(|v| *v == want).await;
    }
    .boxed()
    .shared()
}

/// Runs the operator until SIGTERM/SIGINT.
pub async fn run(options: RunOptions) -> Result<(), RunError> {
    let config = kube::Config::infer().await.map_err(RunError::Config)?;
    let metrics = Arc::new(Metrics::default());
    // Reconciles go through the client-side rate limit; every request is counted.
    let client = kube::client::ClientBuilder::try_from(config.clone())
        .map_err(RunError::Connect)?
        .with_layer(&RateLimitLayer::new(options.qps, options.burst))
        .with_layer(&crate::metrics::CountRequestsLayer(metrics.clone()))
        .build();
    // Leader election gets a client (and connections) of its own: reconcile traffic and
    // its rate limit never delay a renewal.
    let lease_client = Client::try_from(config).map_err(RunError::Connect)?;
    let stop = watch_signals()?;
    run_with_metrics(client, lease_client, options, stop, metrics).await
}

/// Runs the operator with `client` until `stop` holds true.
pub async fn run_with(
    client: Client,
    options: RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    run_with_clients(client.clone(), client, options, stop).await
}

/// Runs the operator until `stop` holds true: reconciling with `client`, electing a
/// leader with `lease_client`.
pub async fn run_with_clients(
    client: Client,
    lease_client: Client,
    options: RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    run_with_metrics(client, lease_client, options, stop, metrics).await
}

/// [`run_with_clients`], reporting into `metrics` (which the client may also count
/// requests into).
pub async fn run_with_metrics(
    client: Client,
    lease_client: Client,
    options: RunOptions,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Result<(), RunError> {
    let ready = Arc::new(AtomicBool::new(false));
    let state = AdminState::new(metrics.clone(), ready.clone());
    let term = state.leading.clone();
    admin::serve(options.metrics_addr, state)
        .await
        .map_err(|source| RunError::BindAdmin {
            addr: options.metrics_addr,
            source,
        })?;
    info!(addr = %options.metrics_addr, "Serving /healthz, /readyz and /metrics");

    if !options.leader_elect {
        metrics.leader.set(1);
        term.start();
        controller::run(
            client,
            options.controller,
            metrics,
            ready,
            when(&stop, true),
            futures::future::pending(),
        )
        .await;
        return Ok(());
    }

    let manager = leader::manager(
        lease_client.clone(),
        &options.lease_namespace,
        &options.lease_name,
        &options.identity,
        options.lease,
    )
    .await
    .map_err(RunError::Lease)?;
    let (mut leading, task) = manager.watch().await;
    // The watches start now and stay: a standby keeps its caches warm, so when it takes
    // over it reconciles from them at once instead of listing everything first.
    let watches = controller::watches::Watches::start(&client, &options.controller);
    info!(identity = %options.identity, lease = %options.lease_name, namespace = %options.lease_namespace, "Waiting for the lease");
    loop {
        // A standby is ready: it serves its role by waiting.
        ready.store(true, Ordering::Relaxed);
        let mut stop_rx = stop.clone();
        tokio::select! {
            _ = stop_rx.wait_for(|v| *v) => break,
            changed = leading.wait_for(|l| *l) => if changed.is_err() { break },
        }
        info!("Became the leader");
        metrics.leader.set(1);
        term.start();
        ready.store(false, Ordering::Relaxed);
        let (lost_tx, mut lost_rx) = watch::channel(false);
        let deadline = {
            let (client, ns, name, id, timing) = (
                lease_client.clone(),
                options.lease_namespace.clone(),
                options.lease_name.clone(),
                options.identity.clone(),
                options.lease,
            );
            async move {
                leader::renew_deadline(client, &ns, &name, &id, timing).await;
                let _ = lost_tx.send(true);
            }
        };
        let lease_gone = when(&leading, false);
        let lost = async move {
            tokio::select! {
                () = lease_gone => {}
                () = deadline => {}
            }
        };
        controller::lead(
            &watches,
            client.clone(),
            options.controller.clone(),
            metrics.clone(),
            ready.clone(),
            when(&stop, true),
            lost,
        )
        .await;
        metrics.leader.set(0);
        term.stop();
        if *stop.borrow() {
            break;
        }
        warn!("Lost the lease: stopped reconciling, standing by");
        if *lost_rx.borrow_and_update() {
            // The renewals failed while the lease manager still says "leader": wait for it
            // to notice, or a lease duration, before leading again.
            let mut stop_rx = stop.clone();
            tokio::select! {
                _ = stop_rx.wait_for(|v| *v) => break,
                _ = leading.wait_for(|l| !*l) => {}
                () = tokio::time::sleep(options.lease.duration()) => {}
            }
        }
    }
    // Closing the channel makes the lease manager release the lease and finish.
    drop(leading);
    match task.await {
        Ok(Ok(_)) => info!("Released the lease"),
        Ok(Err(e)) => error!(error = %e, "Could not release the lease"),
        Err(e) => error!(error = %e, "Lease task failed"),
    }
    Ok(())
}
