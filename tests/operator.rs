//! The running operator, in-process: the controller wiring against the in-memory API
//! (list, watch fallback, owned kinds), readiness, the admin endpoints and graceful stop.

mod fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use fake::running::Running;
use fake::{FakeApi, collection};
use http::{Request, StatusCode};
use safeapp::admin::{self, AdminState};
use safeapp::controller::{self, RunConfig};
use safeapp::metrics::Metrics;
use safeapp::policy::Policy;
use serde_json::json;
use tokio::sync::watch;
use tower::ServiceExt;

/// Stores a SafeApp in namespace `shop` with one http port.
fn insert_app(fake: &FakeApi, name: &str, image: &str, labels: serde_json::Value) {
    fake.insert(
        &collection("safeapp.dev/v1alpha1", "shop", "safeapps"),
        json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
               "metadata": {"name": name, "namespace": "shop", "labels": labels},
               "spec": {"image": image, "ports": [{"name": "http", "port": 8080}]}}),
    );
}

/// Signals a running operator to stop and waits (10 s at most) for it to return Ok.
async fn stop_and_join(
    stop: &watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), safeapp::operator::RunError>>,
) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops within 10 s")
        .expect("no panic")
        .expect("ok");
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// The controller started as `safeapp run` starts it reconciles what it lists, reports
// ready once its watch synced, and on stop finishes and returns.
#[tokio::test]
async fn controller_runs_and_stops_gracefully() {
    let fake = FakeApi::as_operator();
    insert_app(&fake, "web", "registry.example.com/web:1.0.0", json!({}));
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };
    let config = RunConfig {
        policy: Policy::default(),
        resync: Duration::from_secs(300),
        concurrency: 4,
        namespace: Some("shop".into()),
        selector: None,
        watch_secrets: false,
    };
    let task = tokio::spawn(controller::run(
        fake.client(),
        config,
        metrics.clone(),
        ready.clone(),
        futures::FutureExt::shared(futures::FutureExt::boxed(stop)),
        futures::future::pending(),
    ));
    let deployments = collection("apps/v1", "shop", "deployments");
    eventually("the Deployment", || fake.get(&deployments, "web").is_some()).await;
    eventually("readiness", || ready.load(Ordering::Relaxed)).await;
    // The gauge is set when the reconcile's result comes back, after its writes.
    eventually("the managed gauge", || metrics.managed.get() == 1).await;
    let apps = collection("safeapp.dev/v1alpha1", "shop", "safeapps");
    eventually("the status", || {
        fake.get(&apps, "web")
            .is_some_and(|a| a["status"]["observedGeneration"] == 1)
    })
    .await;
    let status = fake
        .get(
            &collection("safeapp.dev/v1alpha1", "shop", "safeapps"),
            "web",
        )
        .unwrap()["status"]
        .clone();
    assert_eq!(status["observedGeneration"], 1);

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops within 10 s")
        .expect("no panic");
    assert!(!ready.load(Ordering::Relaxed), "not ready once stopped");
}

async fn get(state: AdminState, path: &str) -> (StatusCode, String) {
    let response = admin::router(state)
        .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

// /healthz answers while the replica can do its job; /readyz follows readiness and says
// why not; /metrics is Prometheus text. A leader that has not synced says so on /readyz
// at once, on `safeapp_leader_synced`, and after the sync limit on /healthz (so the
// liveness probe restarts it).
#[tokio::test]
async fn admin_endpoints() {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let state = AdminState {
        sync_limit: Duration::from_millis(300),
        ..AdminState::new(metrics.clone(), ready.clone())
    };
    // Starting up, standing by: not ready, alive.
    assert_eq!(get(state.clone(), "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get(state.clone(), "/readyz").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: watches not synced".to_string()
        )
    );
    // Leading, not synced: /readyz says so; /healthz too once the limit passed.
    state.leading.start();
    let (code, body) = get(state.clone(), "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.starts_with("not ready: leading for 0 s, watches not synced"),
        "{body}"
    );
    assert_eq!(get(state.clone(), "/healthz").await.0, StatusCode::OK);
    assert!(
        get(state.clone(), "/metrics")
            .await
            .1
            .contains("safeapp_leader_synced 0")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (code, body) = get(state.clone(), "/healthz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("without its watches synced"), "{body}");
    // Synced: ready and alive.
    ready.store(true, Ordering::Relaxed);
    assert_eq!(get(state.clone(), "/readyz").await.0, StatusCode::OK);
    assert_eq!(get(state.clone(), "/healthz").await.0, StatusCode::OK);
    assert!(
        get(state.clone(), "/metrics")
            .await
            .1
            .contains("safeapp_leader_synced 1")
    );
    // A standby is ready (and alive) however long it waits.
    state.leading.stop();
    assert_eq!(get(state.clone(), "/readyz").await.0, StatusCode::OK);
    assert_eq!(get(state.clone(), "/healthz").await.0, StatusCode::OK);
    metrics.drift("Service");
    metrics.leader.set(1);
    let (code, body) = get(state.clone(), "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body.contains("safeapp_drift_corrections_total{kind=\"Service\"} 1"),
        "{body}"
    );
    assert!(body.contains("safeapp_leader 1"), "{body}");
    assert!(
        body.contains("safeapp_reconcile_duration_seconds"),
        "{body}"
    );
    assert_eq!(get(state, "/nope").await.0, StatusCode::NOT_FOUND);
}

// The whole `safeapp run` path without leader election: it serves, reconciles, and on
// the stop signal finishes and returns Ok (the binary then exits 0).
#[tokio::test]
async fn operator_stops_cleanly_on_signal() {
    let fake = FakeApi::as_operator();
    insert_app(&fake, "api", "registry.example.com/api:2.0.0", json!({}));
    let options = safeapp::operator::RunOptions {
        leader_elect: false,
        ..replica("solo")
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(safeapp::operator::run_with(fake.client(), options, stop_rx));
    let deployments = collection("apps/v1", "shop", "deployments");
    eventually("the Deployment", || fake.get(&deployments, "api").is_some()).await;
    stop_tx.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops within 10 s")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
}

fn replica(identity: &str) -> safeapp::operator::RunOptions {
    safeapp::operator::RunOptions {
        controller: RunConfig {
            policy: Policy::default(),
            resync: Duration::from_secs(300),
            concurrency: 2,
            namespace: Some("shop".into()),
            selector: None,
            watch_secrets: false,
        },
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_elect: true,
        lease_namespace: "shop".into(),
        lease_name: "safeapp-operator-leader".into(),
        lease: safeapp::leader::LeaseTiming::default(),
        identity: identity.into(),
        qps: safeapp::ratelimit::DEFAULT_QPS,
        burst: safeapp::ratelimit::DEFAULT_BURST,
    }
}

// Two replicas: one holds the Lease and reconciles, the other waits with its caches
// warm; when the leader stops it releases the Lease, and the standby takes over within
// the lease duration without listing anything again.
#[tokio::test]
async fn standby_takes_over_when_the_leader_stops() {
    let fake = FakeApi::as_operator();
    insert_app(&fake, "web", "registry.example.com/web:1.0.0", json!({}));
    let leases = collection("coordination.k8s.io/v1", "shop", "leases");
    let deployments = collection("apps/v1", "shop", "deployments");
    let holder = |f: &FakeApi| {
        f.get(&leases, "safeapp-operator-leader")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };

    let (stop_a, rx_a) = watch::channel(false);
    let a = tokio::spawn(safeapp::operator::run_with(
        fake.client(),
        replica("replica-a"),
        rx_a,
    ));
    eventually("replica-a to lead", || {
        holder(&fake).as_deref() == Some("replica-a")
    })
    .await;
    eventually("replica-a to reconcile", || {
        fake.get(&deployments, "web").is_some()
    })
    .await;

    let (stop_b, rx_b) = watch::channel(false);
    let b = tokio::spawn(safeapp::operator::run_with(
        fake.client(),
        replica("replica-b"),
        rx_b,
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        holder(&fake).as_deref(),
        Some("replica-a"),
        "the standby does not take a held lease"
    );

    stop_and_join(&stop_a, a).await;
    assert_eq!(
        holder(&fake),
        None,
        "the stopping leader released the lease"
    );
    // Drift while nobody leads: the new leader puts it back.
    fake.clear_calls();
    fake.remove(&deployments, "web");
    eventually("replica-b to lead", || {
        holder(&fake).as_deref() == Some("replica-b")
    })
    .await;
    eventually("replica-b to reconcile", || {
        fake.get(&deployments, "web").is_some()
    })
    .await;
    // The standby kept its caches warm while it waited: taking over lists nothing again.
    let lists: Vec<String> = fake
        .calls()
        .iter()
        .filter(|c| c.method == http::Method::GET && !c.path.ends_with("?watch"))
        .filter(|c| !c.path.contains("/leases") && !c.path.ends_with("/web"))
        .map(|c| c.path.clone())
        .collect();
    assert_eq!(lists, Vec::<String>::new(), "no list at takeover");

    stop_and_join(&stop_b, b).await;
}

// --selector shards: only the SafeApps matching it are reconciled; two shards in one
// namespace both get onto the shared LimitRange's owners and never take each other off.
#[tokio::test]
async fn selector_limits_the_safeapps() {
    let fake = FakeApi::as_operator();
    for (name, shard) in [("in-a", "a"), ("in-b", "b")] {
        insert_app(
            &fake,
            name,
            "registry.example.com/web:1.0.0",
            json!({"shard": shard}),
        );
    }
    let shard = |id: &str, selector: &str| {
        let mut options = replica(id);
        options.leader_elect = false;
        // A 1 s resync: shard a re-syncs the namespace while shard b is on it.
        options.controller.resync = Duration::from_secs(1);
        options.controller.selector = Some(selector.into());
        options
    };
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(safeapp::operator::run_with(
        fake.client(),
        shard("shard-a", "shard=a"),
        rx,
    ));
    let deployments = collection("apps/v1", "shop", "deployments");
    let limit_ranges = collection("v1", "shop", "limitranges");
    eventually("the shard-a app's Deployment", || {
        fake.get(&deployments, "in-a").is_some()
    })
    .await;
    eventually("shard a on the LimitRange", || {
        fake.get(&limit_ranges, "safeapp-limits")
            .is_some_and(|lr| fake::owner_names(&lr) == ["in-a"])
    })
    .await;
    assert!(
        fake.get(&deployments, "in-b").is_none(),
        "the other shard's app is left alone"
    );
    let (stop_b, rx_b) = watch::channel(false);
    let task_b = tokio::spawn(safeapp::operator::run_with(
        fake.client(),
        shard("shard-b", "shard=b"),
        rx_b,
    ));
    eventually("both shards on the LimitRange", || {
        fake.get(&limit_ranges, "safeapp-limits")
            .is_some_and(|lr| fake::owner_names(&lr) == ["in-a", "in-b"])
    })
    .await;
    // Let shard a resync its namespace: it must not take shard b's app off.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lr = fake
        .get(&limit_ranges, "safeapp-limits")
        .expect("limit range");
    assert_eq!(fake::owner_names(&lr), ["in-a", "in-b"]);
    stop_and_join(&stop, task).await;
    stop_and_join(&stop_b, task_b).await;
}

// A leader that finds the Lease taken stops reconciling at once and stands by.
#[tokio::test]
async fn leader_that_loses_the_lease_stops_reconciling() {
    let fake = FakeApi::as_operator();
    insert_app(&fake, "web", "registry.example.com/web:1.0.0", json!({}));
    let leases = collection("coordination.k8s.io/v1", "shop", "leases");
    let deployments = collection("apps/v1", "shop", "deployments");
    // A 1 s resync: a controller still running would recreate a deleted child at once.
    let mut options = replica("replica-a");
    options.controller.resync = Duration::from_secs(1);
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(safeapp::operator::run_with(fake.client(), options, rx));
    eventually("replica-a to reconcile", || {
        fake.get(&deployments, "web").is_some()
    })
    .await;
    // While it leads, the resync puts a deleted Deployment back.
    fake.remove(&deployments, "web");
    eventually("the resync to recreate it", || {
        fake.get(&deployments, "web").is_some()
    })
    .await;

    // Another identity takes the lease (as after a partition longer than the lease).
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    fake.edit(
        &leases,
        "safeapp-operator-leader",
        "intruder",
        json!({}),
        |l| {
            l["spec"]["holderIdentity"] = json!("intruder");
            l["spec"]["renewTime"] = json!(now);
            l["spec"]["leaseDurationSeconds"] = json!(3600);
        },
    );
    // replica-a notices at its next renewal (before the 15 s lease runs out)...
    tokio::time::sleep(Duration::from_secs(16)).await;
    // ...and no longer reconciles: a deleted Deployment stays deleted.
    fake.remove(&deployments, "web");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fake.get(&deployments, "web").is_none(),
        "a replica without the lease must not write"
    );
    stop_and_join(&stop, task).await;
}

/// Runs the controller (no leader election) over namespace `shop` with `resync`.
fn start_controller(fake: &FakeApi, resync: Duration) -> Running {
    fake::running::start(fake, "shop", Policy::default(), resync, 4)
}

/// Whether SafeApp `name` of `shop` has a condition whose `field` is `value`.
fn has_condition(
    fake: &FakeApi,
    name: &str,
    field: &str,
    value: &str,
    type_: Option<&str>,
) -> bool {
    fake.get(
        &collection("safeapp.dev/v1alpha1", "shop", "safeapps"),
        name,
    )
    .is_some_and(|a| {
        a["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|x| x[field] == value && type_.is_none_or(|t| x["type"] == t))
        })
    })
}

/// Waits until `n` SafeApps of `shop` have a status and the LimitRange exists.
async fn converged(fake: &FakeApi, n: usize) {
    let apps = collection("safeapp.dev/v1alpha1", "shop", "safeapps");
    eventually("every SafeApp converged", || {
        fake.list(&apps)
            .iter()
            .filter(|a| a["status"]["observedGeneration"] == 1)
            .count()
            == n
            && fake
                .get(&collection("v1", "shop", "limitranges"), "safeapp-limits")
                .is_some()
    })
    .await;
}

// Steady state reads only caches: with a 1 s resync, several resyncs of converged apps
// send no request at all to the API server (the watches stay open).
#[tokio::test]
async fn steady_state_sends_no_requests() {
    let fake = FakeApi::as_operator();
    for name in ["web", "api", "worker"] {
        insert_app(&fake, name, "registry.example.com/web:1.0.0", json!({}));
    }
    let running = start_controller(&fake, Duration::from_secs(1));
    converged(&fake, 3).await;
    // Let the watch events of the operator's own writes settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    fake.clear_calls();
    let reconciles = running.metrics.reconciles.get();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        running.metrics.reconciles.get() >= reconciles + 6,
        "the apps were resynced"
    );
    let requests: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| !c.path.ends_with("?watch"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert!(requests.is_empty(), "{requests:?}");
    running.stop().await;
}

// Triggers that mean something: a status-only update of an owned HPA-like child or of
// the namespace quota (usage) reconciles nothing; a Deployment's status (which drives the
// conditions) and a child's deletion do, and the deleted child comes back.
#[tokio::test]
async fn only_meaningful_changes_trigger_reconciles() {
    let fake = FakeApi::as_operator();
    insert_app(&fake, "web", "registry.example.com/web:1.0.0", json!({}));
    let running = start_controller(&fake, Duration::from_secs(300));
    converged(&fake, 1).await;
    // Let the reconciles caused by the operator's own writes finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pdbs = collection("policy/v1", "shop", "poddisruptionbudgets");
    let settled = running.metrics.reconciles.get();
    fake.edit(&pdbs, "web", "kube-controller-manager", json!({}), |p| {
        p["status"] = json!({"currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1, "expectedPods": 2});
    });
    fake.edit(
        &collection("v1", "shop", "limitranges"),
        "safeapp-limits",
        "x",
        json!({}),
        |l| {
            l["status"] = json!({"ignored": true});
        },
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        running.metrics.reconciles.get(),
        settled,
        "status-only updates reconciled"
    );
    let deployments = collection("apps/v1", "shop", "deployments");
    fake.edit(
        &deployments,
        "web",
        "kube-controller-manager",
        json!({}),
        |d| {
            d["status"] = json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
                             "updatedReplicas": 2, "availableReplicas": 2});
        },
    );
    eventually("Ready from the Deployment's status", || {
        has_condition(&fake, "web", "status", "True", Some("Ready"))
    })
    .await;
    fake.remove(&pdbs, "web");
    eventually("the PDB recreated", || fake.get(&pdbs, "web").is_some()).await;
    running.stop().await;
}

// A leader whose renewals fail (the API server refuses them; kube-lease-manager only
// logs that) stops reconciling by itself once its last renewal expires, before a
// standby could take over.
#[tokio::test]
async fn leader_that_cannot_renew_steps_down() {
    let fake = FakeApi::as_operator();
    insert_app(&fake, "web", "registry.example.com/web:1.0.0", json!({}));
    let deployments = collection("apps/v1", "shop", "deployments");
    let mut options = replica("replica-a");
    options.controller.resync = Duration::from_secs(1);
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(safeapp::operator::run_with(fake.client(), options, rx));
    eventually("replica-a to reconcile", || {
        fake.get(&deployments, "web").is_some()
    })
    .await;
    // From now on every write to the Lease fails.
    fake.fail(http::Method::PATCH, "/leases/", 500, usize::MAX);
    fake.fail(http::Method::PUT, "/leases/", 500, usize::MAX);
    // The last renewal was at most 10 s ago and lasts 15 s: by 17 s it has expired.
    tokio::time::sleep(Duration::from_secs(17)).await;
    fake.remove(&deployments, "web");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fake.get(&deployments, "web").is_none(),
        "a leader whose lease expired must not write"
    );
    stop_and_join(&stop, task).await;
}

// The caches hold only objects labelled as the operator's: a Service of the same name made
// by someone else is looked up before anything is created, and left alone (NameConflict),
// also for a brand-new SafeApp.
#[tokio::test]
async fn foreign_object_is_not_overwritten_with_caches() {
    let fake = FakeApi::as_operator();
    let services = collection("v1", "shop", "services");
    fake.insert(
        &services,
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "shop", "labels": {"team": "other"}},
               "spec": {"ports": [{"port": 80}]}}),
    );
    let before = fake.get(&services, "web").unwrap();
    insert_app(&fake, "web", "registry.example.com/web:1.0.0", json!({}));
    let running = start_controller(&fake, Duration::from_secs(300));
    eventually("NameConflict", || {
        has_condition(&fake, "web", "reason", "NameConflict", None)
    })
    .await;
    assert_eq!(fake.get(&services, "web").unwrap(), before, "untouched");
    running.stop().await;
}

// A restarted operator (a failover looks the same) with nothing changed writes nothing:
// its caches list what exists, and every SafeApp is found converged.
#[tokio::test]
async fn restart_with_nothing_changed_writes_nothing() {
    let fake = FakeApi::as_operator();
    for name in ["web", "api", "worker"] {
        insert_app(&fake, name, "registry.example.com/web:1.0.0", json!({}));
    }
    let running = start_controller(&fake, Duration::from_secs(300));
    converged(&fake, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;

    fake.clear_calls();
    let running = start_controller(&fake, Duration::from_secs(300));
    eventually("every SafeApp reconciled after the restart", || {
        running.metrics.reconciles.get() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes: Vec<String> = fake
        .writes()
        .into_iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    running.stop().await;
}

// A cache that cannot list (here RBAC refuses to list PDBs) does not stall every
// reconcile forever: after the wait for the caches, reconciles read from the API.
#[tokio::test]
async fn a_cache_that_cannot_list_does_not_stall_reconciles() {
    let mut rbac = fake::apiserver::Rbac::operator();
    for rule in &mut rbac.rules {
        if rule.resources.iter().any(|r| r == "poddisruptionbudgets") {
            rule.verbs.retain(|v| v != "list" && v != "watch");
        }
    }
    let fake = FakeApi::with_rbac(rbac);
    insert_app(&fake, "web", "registry.example.com/web:1.0.0", json!({}));
    let running = start_controller(&fake, Duration::from_secs(300));
    let deployments = collection("apps/v1", "shop", "deployments");
    let deadline = Instant::now() + controller::CACHE_WAIT + Duration::from_secs(15);
    while fake.get(&deployments, "web").is_none() {
        assert!(
            Instant::now() < deadline,
            "no reconcile past the cache wait"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
}

// Through the real controller: editing a referenced ConfigMap's data reaches the pod
// template within seconds through the metadata watch, and a label edit does not.
#[tokio::test]
async fn config_map_edit_rolls_the_deployment() {
    let fake = FakeApi::as_operator();
    let config_maps = collection("v1", "shop", "configmaps");
    fake.insert(
        &config_maps,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app-config", "namespace": "shop"}, "data": {"k": "1"}}),
    );
    fake.insert(
        &collection("safeapp.dev/v1alpha1", "shop", "safeapps"),
        json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"image": "registry.example.com/web:1.0.0",
                        "ports": [{"name": "http", "port": 8080}],
                        "envFrom": [{"configMapRef": {"name": "app-config"}}]}}),
    );
    let running = start_controller(&fake, Duration::from_secs(300));
    let deployments = collection("apps/v1", "shop", "deployments");
    let hash = || {
        fake.get(&deployments, "web").and_then(|d| {
            d["spec"]["template"]["metadata"]["annotations"]["safeapp.dev/config-hash"]
                .as_str()
                .map(String::from)
        })
    };
    eventually("the Deployment with a config hash", || hash().is_some()).await;
    let first = hash().unwrap();
    converged(&fake, 1).await;
    fake.edit(
        &config_maps,
        "app-config",
        "kubectl-label",
        json!({}),
        |c| {
            c["metadata"]["labels"] = json!({"team": "a"});
        },
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        hash().as_deref(),
        Some(first.as_str()),
        "a label edit rolls nothing"
    );
    fake.edit(&config_maps, "app-config", "kubectl-edit", json!({}), |c| {
        c["data"]["k"] = json!("2");
    });
    eventually("a new config hash", || hash().is_some_and(|h| h != first)).await;
    running.stop().await;
}

// Through the real controller: when a peer adds the matching rule, the app naming it is
// re-checked without any change of its own.
#[tokio::test]
async fn a_peer_rule_change_updates_the_other_side() {
    let fake = FakeApi::as_operator();
    let apps = collection("safeapp.dev/v1alpha1", "shop", "safeapps");
    let app = |name: &str, access: serde_json::Value| {
        json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
               "metadata": {"name": name, "namespace": "shop"},
               "spec": {"image": "registry.example.com/web:1.0.0",
                        "ports": [{"name": "http", "port": 8080}], "accessPolicy": access}})
    };
    fake.insert(&apps, app("front", json!({"outbound": [{"app": "api"}]})));
    fake.insert(&apps, app("api", json!({"inbound": [{"app": "other"}]})));
    let running = start_controller(&fake, Duration::from_secs(300));
    eventually("front reports the missing side", || {
        has_condition(
            &fake,
            "front",
            "status",
            "False",
            Some("AccessPoliciesMatched"),
        )
    })
    .await;
    fake.edit(&apps, "api", "kubectl-edit", json!({}), |a| {
        a["spec"]["accessPolicy"] = json!({"inbound": [{"app": "front"}]});
    });
    eventually("front sees the matching rule", || {
        has_condition(
            &fake,
            "front",
            "status",
            "True",
            Some("AccessPoliciesMatched"),
        )
    })
    .await;
    running.stop().await;
}

// SafeJobs run through their own Controller in the same operator: a SafeJob gets its
// CronJob from the watch alone; the CronJob's status (a run started) reaches the
// SafeJob's status; a deleted CronJob comes back; at steady state, no requests.
#[tokio::test]
async fn safejobs_are_reconciled_by_the_running_operator() {
    let fake = FakeApi::as_operator();
    let safejobs = collection("safeapp.dev/v1alpha1", "shop", "safejobs");
    let cronjobs = collection("batch/v1", "shop", "cronjobs");
    fake.insert(
        &safejobs,
        json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeJob",
               "metadata": {"name": "report", "namespace": "shop"},
               "spec": {"image": "registry.example.com/report:2.1.0", "schedule": "30 2 * * *",
                        "timeZone": "Etc/UTC", "activeDeadlineSeconds": 3600}}),
    );
    let running = start_controller(&fake, Duration::from_secs(1));
    eventually("the CronJob", || fake.get(&cronjobs, "report").is_some()).await;
    let ready = |reason: &str| {
        fake.get(&safejobs, "report").is_some_and(|j| {
            j["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|x| x["type"] == "Ready" && x["reason"] == reason)
            })
        })
    };
    eventually("Ready=Scheduled", || ready("Scheduled")).await;

    fake.edit(
        &cronjobs,
        "report",
        "kube-controller-manager",
        json!({}),
        |c| {
            c["status"] = json!({"lastScheduleTime": "2026-11-30T02:30:00Z",
                             "active": [{"kind": "Job", "name": "report-1", "namespace": "shop"}]});
        },
    );
    eventually("the run in the SafeJob's status", || {
        fake.get(&safejobs, "report").is_some_and(|j| {
            j["status"]["lastScheduleTime"] == "2026-11-30T02:30:00Z" && j["status"]["active"] == 1
        })
    })
    .await;

    fake.remove(&cronjobs, "report");
    eventually("the CronJob recreated", || {
        fake.get(&cronjobs, "report").is_some()
    })
    .await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    fake.clear_calls();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let requests: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| !c.path.ends_with("?watch"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert!(requests.is_empty(), "{requests:?}");
    running.stop().await;
}
