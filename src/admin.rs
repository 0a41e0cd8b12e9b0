//! The admin HTTP server (`--metrics-addr`): `/healthz` (the process is alive), `/readyz`
//! (ready to serve its role), `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: watches not synced",
        )
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
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
