//! The admin HTTP server (`--metrics-addr`): `/healthz` (the process is alive), `/readyz`
//! (ready to serve its role), `/metrics` (Prometheus text format).
//!
//! A leader whose watches have not synced cannot repair anything, and it says so three
//! ways: `/readyz` answers 503 naming how long it has led unsynced; `safeapp_leader_synced`
//! is 0 (the `SafeAppLeaderNotSynced` alert); and after [`SYNC_LIMIT`] `/healthz` fails
//! too, so the liveness probe restarts the replica (a stuck start-up is then retried from
//! scratch, and the standby may take the lease).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the endpoints report.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// True when the replica can serve its role: a standby waiting for the lease, or a
    /// leader whose watches have synced. A standby must be ready, or a rollout of the
    /// operator with `maxUnavailable: 0` would wait forever for a pod that never leads.
    pub ready: Arc<AtomicBool>,
    /// Since when this replica leads (None while it stands by).
    pub leading: Arc<Leading>,
    /// How long a leader may go unsynced before `/healthz` fails.
    pub sync_limit: Duration,
}

/// A leader that has not synced for this long is not alive as far as the liveness probe
/// is concerned: 60 s (a cold start at 1,000 SafeApps syncs in well under 1 s in memory
/// and about 15 s on a real API server).
pub const SYNC_LIMIT: Duration = Duration::from_secs(60);

impl AdminState {
    /// The endpoints over `metrics` and `ready`, standing by, with [`SYNC_LIMIT`].
    pub fn new(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Self {
        Self {
            metrics,
            ready,
            leading: Arc::default(),
            sync_limit: SYNC_LIMIT,
        }
    }

    /// How long this replica has led without its watches synced (None: standing by, or
    /// synced).
    fn unsynced_leader_for(&self) -> Option<Duration> {
        if self.ready.load(Ordering::Relaxed) {
            return None;
        }
        self.leading.since().map(|since| since.elapsed())
    }
}

/// When this replica became the leader, while it leads.
#[derive(Debug, Default)]
pub struct Leading(Mutex<Option<Instant>>);

impl Leading {
    /// This replica leads from now on.
    pub fn start(&self) {
        *self.lock() = Some(Instant::now());
    }

    /// This replica stopped leading.
    pub fn stop(&self) {
        *self.lock() = None;
    }

    fn since(&self) -> Option<Instant> {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.unsynced_leader_for() {
        Some(for_) if for_ > state.sync_limit => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unhealthy: leading for {} s without its watches synced (limit {} s)",
                for_.as_secs(),
                state.sync_limit.as_secs()
            ),
        ),
        _ => (StatusCode::OK, "ok".to_string()),
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        return (StatusCode::OK, "ready".to_string());
    }
    let why = match state.unsynced_leader_for() {
        Some(for_) => format!(
            "not ready: leading for {} s, watches not synced",
            for_.as_secs()
        ),
        None => "not ready: watches not synced".to_string(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, why)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let synced = state.leading.since().is_some() && state.ready.load(Ordering::Relaxed);
    state.metrics.leader_synced.set(i64::from(synced));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// The routes, separate from the listener so tests can call them directly.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr` (fails fast if it cannot) and serves until the process ends.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "Admin server stopped");
        }
    }))
}
