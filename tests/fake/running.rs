//! `safeapp run`'s controller (no leader election) over the in-memory API, for the tests
//! that drive the real watches, caches and triggers: start it, wait for what it does,
//! stop it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use safeapp::controller::{self, RunConfig};
use safeapp::metrics::Metrics;
use safeapp::policy::Policy;
use tokio::sync::watch;

use super::FakeApi;

/// A running controller.
pub struct Running {
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops it and waits (10 s at most) for it to return.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Runs the controller over namespace `ns` with `policy` and `resync`.
pub fn start(
    fake: &FakeApi,
    ns: &str,
    policy: Policy,
    resync: Duration,
    concurrency: u16,
) -> Running {
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };
    let config = RunConfig {
        policy,
        resync,
        concurrency,
        namespace: Some(ns.into()),
        selector: None,
        watch_secrets: false,
    };
    let task = tokio::spawn(controller::run(
        fake.client(),
        config,
        metrics.clone(),
        Arc::new(AtomicBool::new(false)),
        futures::FutureExt::shared(futures::FutureExt::boxed(stop)),
        futures::future::pending(),
    ));
    Running {
        metrics,
        stop: stop_tx,
        task,
    }
}

/// Waits until `check` holds, at most `limit`; returns how long it took.
pub async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}
