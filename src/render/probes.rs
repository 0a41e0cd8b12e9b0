//! Readiness, liveness and startup probes.
//!
//! Liveness differs from readiness on purpose: it starts later and tolerates more
//! failures, so a slow dependency takes a pod out of the Service (readiness) long before
//! it restarts it (liveness).

use k8s_openapi::api::core::v1::{HTTPGetAction, Probe, TCPSocketAction};

use crate::validate::{ReadinessSource, ValidatedApp};

/// Extra delay of a derived liveness probe over readiness.
const LIVENESS_EXTRA_DELAY: i32 = 15;

/// The three probes of the app container: (readiness, liveness, startup).
pub fn probes(app: &ValidatedApp) -> (Probe, Probe, Option<Probe>) {
    let given = app.spec.probes.clone().unwrap_or_default();
    let readiness = match &app.readiness {
        ReadinessSource::Explicit(p) => zero_means_default(p.clone()),
        ReadinessSource::Http { path, port } => readiness_defaults(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.clone()),
                port: port.clone(),
                scheme: Some("HTTP".into()),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        }),
        ReadinessSource::Tcp { port } => readiness_defaults(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: port.clone(),
                host: None,
            }),
            ..Probe::default()
        }),
        ReadinessSource::FromLiveness(l) => readiness_defaults(handler_only(l)),
    };
    let liveness = given
        .liveness
        .map_or_else(|| liveness_from(&readiness), zero_means_default);
    (readiness, liveness, given.startup.map(zero_means_default))
}

/// In a core Probe, 0 for a timeout, period or threshold means "the server's default"
/// (1 s, 10 s, 1, 3): the API server stores the default in its place, so a rendered 0
/// would read back as drift on every resync. Render "unset" instead; the meaning is the
/// same.
fn zero_means_default(mut p: Probe) -> Probe {
    for field in [
        &mut p.timeout_seconds,
        &mut p.period_seconds,
        &mut p.success_threshold,
        &mut p.failure_threshold,
    ] {
        if *field == Some(0) {
            *field = None;
        }
    }
    p
}

fn handler_only(p: &Probe) -> Probe {
    Probe {
        exec: p.exec.clone(),
        grpc: p.grpc.clone(),
        http_get: p.http_get.clone(),
        tcp_socket: p.tcp_socket.clone(),
        ..Probe::default()
    }
}

fn readiness_defaults(handler: Probe) -> Probe {
    Probe {
        period_seconds: Some(5),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        success_threshold: Some(1),
        ..handler
    }
}

/// Liveness derived from readiness: same check, later start, looser threshold.
pub fn liveness_from(readiness: &Probe) -> Probe {
    let delay = readiness.initial_delay_seconds.unwrap_or(0) + LIVENESS_EXTRA_DELAY;
    let period = readiness.period_seconds.unwrap_or(10).max(10);
    let timeout = readiness.timeout_seconds.unwrap_or(1).max(2);
    let failures = (readiness.failure_threshold.unwrap_or(3) * 2).max(6);
    Probe {
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        success_threshold: Some(1),
        termination_grace_period_seconds: None,
        ..handler_only(readiness)
    }
}
