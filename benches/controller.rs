//! Controller benchmark: `cargo bench --bench controller` (figures in BENCHMARKS.md).
//!
//! Start-up time and idle memory; the resident memory of caches holding 10,000 SafeApps
//! and their children (target under 300 MiB); then, against the in-memory API of
//! tests/fake (with the RBAC of config/rbac and the API server's storage rules), 200 and
//! 1,000 new SafeApps in one namespace: writes to converge (target: one per child, one
//! status per app, one per namespace for the shared objects), Events (at most one per
//! app), writes at steady state (target 0), and CPU per reconcile excluding the API.
//! Runs on a current-thread runtime, so wall time is the operator's CPU time.

#[path = "../tests/fake/mod.rs"]
mod fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake::{FakeApi, collection};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::store;
use kube::runtime::watcher;
use safeapp::api::SafeApp;
use safeapp::controller::Context;
use safeapp::controller::app::reconcile_app;
use safeapp::controller::cache::Compact;
use safeapp::controller::namespace::reconcile_namespace;
use safeapp::metrics::Metrics;
use safeapp::policy::Policy;
use safeapp::render;
use safeapp::validate;
use serde_json::json;

const APPS: usize = 1_000;
const NAMESPACES: usize = 20;
const CACHED: usize = 10_000;

fn manifest(i: usize) -> serde_json::Value {
    json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
           "metadata": {"name": format!("app-{i:05}"), "namespace": format!("ns-{:02}", i % NAMESPACES)},
           "spec": {"image": "registry.example.com/shop/web:1.4.2", "ports": [{"name": "http", "port": 8080}],
                    "healthCheck": {"path": "/health"}, "tier": "backend", "environment": "production",
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}}})
}

struct Pass {
    requests: usize,
    /// Writes by what they wrote: children, status, shared objects, events.
    child_writes: usize,
    status_writes: usize,
    shared_writes: usize,
    events: usize,
    operator_time: Duration,
}

impl Pass {
    fn writes(&self) -> usize {
        self.child_writes + self.status_writes + self.shared_writes + self.events
    }
}

/// One pass of the app reconciler over `apps` SafeApps of namespace `ns`, then the
/// namespace reconciler over the namespaces it marked, as the running controller does.
async fn pass(fake: &FakeApi, ctx: &Context, ns: &str, apps: usize) -> Pass {
    fake.clear_calls();
    let api_before = fake.serve_time();
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    let started = Instant::now();
    for i in 0..apps {
        let value = fake.get(&coll, &format!("app-{i:05}")).expect("stored");
        let app: SafeApp = serde_json::from_value(value).expect("typed");
        reconcile_app(&app, ctx).await.expect("reconcile");
    }
    for ns in ctx.namespaces.take_dirty() {
        reconcile_namespace(&ns, ctx).await.expect("namespace");
    }
    let operator_time = started
        .elapsed()
        .saturating_sub(fake.serve_time() - api_before);
    let writes = fake.writes();
    let count = |f: &dyn Fn(&str) -> bool| writes.iter().filter(|c| f(&c.path)).count();
    Pass {
        requests: fake.calls().len(),
        events: count(&|p| p.contains("/events")),
        status_writes: count(&|p| p.ends_with("/status")),
        shared_writes: count(&|p| p.contains("/limitranges/") || p.contains("/resourcequotas/")),
        child_writes: count(&|p| {
            !p.contains("/events")
                && !p.ends_with("/status")
                && !p.contains("/limitranges/")
                && !p.contains("/resourcequotas/")
        }),
        operator_time,
    }
}

/// N new SafeApps in one namespace against the in-memory API (RBAC of config/rbac,
/// omitempty drops, defaulting): writes to converge, Events, then a steady-state resync.
async fn converge(apps: usize) {
    let fake = FakeApi::as_operator();
    let ns = "shop";
    for i in 0..apps {
        let mut m = manifest(i);
        m["metadata"]["namespace"] = json!(ns);
        fake.insert(&collection("safeapp.dev/v1alpha1", ns, "safeapps"), m);
    }
    let ctx = Context::new(
        fake.client(),
        Policy::default(),
        Arc::new(Metrics::default()),
        Duration::from_secs(300),
    );
    let first = pass(&fake, &ctx, ns, apps).await;
    let children = 4 * apps; // Deployment, Service, PodDisruptionBudget, NetworkPolicy
    let target = children + apps + 1;
    println!(
        "converge {apps} new SafeApps in one namespace: {} writes ({} children, {} status, {} LimitRange/ResourceQuota, {} Events; target <= {target} writes and <= {apps} Events: {}), {:.1} API requests per SafeApp, {:.0} µs operator CPU per reconcile",
        first.writes(),
        first.child_writes,
        first.status_writes,
        first.shared_writes,
        first.events,
        if first.writes() - first.events <= target && first.events <= apps {
            "met"
        } else {
            "NOT met"
        },
        first.requests as f64 / apps as f64,
        first.operator_time.as_secs_f64() * 1e6 / apps as f64
    );
    let steady = pass(&fake, &ctx, ns, apps).await;
    println!(
        "steady-state resync of {apps} SafeApps: {} writes (target 0: {}), {:.1} API requests per SafeApp, {:.0} µs operator CPU per reconcile",
        steady.writes(),
        if steady.writes() == 0 {
            "met"
        } else {
            "NOT met"
        },
        steady.requests as f64 / apps as f64,
        steady.operator_time.as_secs_f64() * 1e6 / apps as f64
    );
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn memory() {
    let before = rss_mib();
    let policy = Policy::default();
    let (apps_reader, mut apps_writer) = store::<DeserializeGuard<SafeApp>>();
    let (deploy_reader, mut deploy_writer) = store::<Compact<Deployment>>();
    let (svc_reader, mut svc_writer) = store::<Compact<Service>>();
    let (pdb_reader, mut pdb_writer) = store::<Compact<PodDisruptionBudget>>();
    let (np_reader, mut np_writer) = store::<Compact<NetworkPolicy>>();
    let app_at = |i: usize| {
        let mut app: SafeApp = serde_json::from_value(manifest(i)).expect("typed");
        app.metadata.uid = Some(format!("0b4e1c9a-0000-4000-8000-{i:012}"));
        app.metadata.resource_version = Some(format!("{}", 1000 + i));
        app
    };
    for i in 0..CACHED {
        apps_writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(app_at(i)))));
    }
    let only_apps = rss_mib();
    println!(
        "memory: {CACHED} SafeApps cached (what the controller keeps): RSS {only_apps:.1} MiB (+{:.1} MiB over {before:.1} MiB at start)",
        only_apps - before
    );
    // The children as the caches hold them in a cluster: stored by the API server
    // (defaults filled in, as the in-memory API does it), a Deployment with its status,
    // managedFields stripped; and every object's metadata in the name caches.
    let (names_dep, mut names_dep_writer) = store::<PartialObjectMeta<Deployment>>();
    let (names_svc, mut names_svc_writer) = store::<PartialObjectMeta<Service>>();
    let (names_pdb, mut names_pdb_writer) = store::<PartialObjectMeta<PodDisruptionBudget>>();
    let (names_np, mut names_np_writer) = store::<PartialObjectMeta<NetworkPolicy>>();
    fn live<K: serde::Serialize>(obj: &K, plural: &str, uid: usize) -> serde_json::Value {
        let mut v = serde_json::to_value(obj).expect("json");
        fake::apiserver::store(plural, &mut v);
        v["metadata"]["uid"] = json!(format!("7f1e2d3c-0000-4000-8000-{uid:012}"));
        v["metadata"]["resourceVersion"] = json!(format!("{}", 50_000 + uid));
        v["metadata"]["generation"] = json!(1);
        v["metadata"]["creationTimestamp"] = json!("2026-11-30T00:00:00Z");
        if plural == "deployments" {
            v["status"] = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                "readyReplicas": 2, "availableReplicas": 2, "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.", "lastUpdateTime": "2026-11-30T00:00:00Z", "lastTransitionTime": "2026-11-30T00:00:00Z"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": "2026-11-30T00:00:00Z", "lastTransitionTime": "2026-11-30T00:00:00Z"}]});
        }
        v
    }
    /// As the name caches keep it: the name only.
    fn meta_of<K>(v: &serde_json::Value) -> PartialObjectMeta<K> {
        PartialObjectMeta {
            types: None,
            metadata: serde_json::from_value(
                json!({"name": v["metadata"]["name"], "namespace": v["metadata"]["namespace"]}),
            )
            .expect("meta"),
            _phantom: std::marker::PhantomData,
        }
    }
    fn compact<K>(v: serde_json::Value) -> Compact<K> {
        serde_json::from_value(v).expect("compact")
    }
    for i in 0..CACHED {
        let app = app_at(i);
        let validated = validate::validate(&app, &policy).expect("valid");
        let r = render::render(&validated, &policy);
        let d = live(
            &r.workload.as_deployment().expect("a Deployment"),
            "deployments",
            4 * i,
        );
        names_dep_writer.apply_watcher_event(&watcher::Event::Apply(meta_of(&d)));
        deploy_writer.apply_watcher_event(&watcher::Event::Apply(compact(d)));
        if let Some(svc) = r.service {
            let svc = live(&svc, "services", 4 * i + 1);
            names_svc_writer.apply_watcher_event(&watcher::Event::Apply(meta_of(&svc)));
            svc_writer.apply_watcher_event(&watcher::Event::Apply(compact(svc)));
        }
        let pdb = live(&r.pdb, "poddisruptionbudgets", 4 * i + 2);
        names_pdb_writer.apply_watcher_event(&watcher::Event::Apply(meta_of(&pdb)));
        pdb_writer.apply_watcher_event(&watcher::Event::Apply(compact(pdb)));
        if let Some(np) = r.network_policy {
            let np = live(&np, "networkpolicies", 4 * i + 3);
            names_np_writer.apply_watcher_event(&watcher::Event::Apply(meta_of(&np)));
            np_writer.apply_watcher_event(&watcher::Event::Apply(compact(np)));
        }
    }
    let names = names_dep.state().len()
        + names_svc.state().len()
        + names_pdb.state().len()
        + names_np.state().len();
    let after_all = rss_mib();
    println!(
        "memory: {} SafeApps + {} Deployments + {} Services + {} PDBs + {} NetworkPolicies cached as stored by the API server (defaults, Deployment status), + {names} entries in the name caches: RSS {:.1} MiB (+{:.1} MiB over {:.1} MiB before; target <= 300 MiB: {})",
        apps_reader.state().len(),
        deploy_reader.state().len(),
        svc_reader.state().len(),
        pdb_reader.state().len(),
        np_reader.state().len(),
        after_all,
        after_all - before,
        before,
        if after_all <= 300.0 { "met" } else { "NOT met" }
    );
}

/// Start-up: from `controller::run` to ready (every watch listed and the SafeApp cache
/// synced) over 1,000 SafeApps served by the in-memory API, then RSS at idle.
async fn startup() {
    let fake = FakeApi::new();
    for i in 0..APPS {
        let ns = format!("ns-{:02}", i % NAMESPACES);
        fake.insert(
            &collection("safeapp.dev/v1alpha1", &ns, "safeapps"),
            manifest(i),
        );
    }
    let started = Instant::now();
    let running = spawn_controller(fake.client(), "ns-00");
    running.until_ready().await;
    let to_ready = started.elapsed();
    // Let the first reconciles of the namespace's 50 SafeApps finish, then sit idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "start-up: ready {:.1} ms after start (namespace of {} SafeApps, in-memory API); idle RSS {:.1} MiB",
        to_ready.as_secs_f64() * 1e3,
        APPS / NAMESPACES,
        rss_mib()
    );
    running.stop().await;
}

fn main() {
    // `cargo bench --bench controller -- failover`: only the failover, 200 and 1,000 apps.
    if std::env::args().any(|a| a == "failover") {
        let parallel = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        parallel.block_on(failover(200));
        parallel.block_on(failover(1_000));
        return;
    }
    // `cargo bench --bench controller -- recovery`: cold start and API-server restart.
    if std::env::args().any(|a| a == "recovery") {
        let parallel = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        parallel.block_on(recovery(1_000));
        return;
    }
    // `cargo bench --bench controller -- upgrades`: only the staged upgrade.
    if std::env::args().any(|a| a == "upgrades") {
        let parallel = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        parallel.block_on(staged_upgrade(1_000, 5, Duration::from_millis(500)));
        return;
    }
    // `cargo bench --bench controller -- canary`: only the canary releases.
    if std::env::args().any(|a| a == "canary") {
        let parallel = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        parallel.block_on(canaries(200));
        return;
    }
    // `cargo bench --bench controller -- status`: only the status economy.
    if std::env::args().any(|a| a == "status") {
        let parallel = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for apps in [200, 1_000] {
            parallel.block_on(status_economy(apps));
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Start-up and idle memory first, in a fresh process; then the cache sizes (measured
    // as growth); then the reconcile passes.
    runtime.block_on(startup());
    memory();
    runtime.block_on(synced_at_scale(CACHED));
    runtime.block_on(converge(200));
    runtime.block_on(converge(1_000));
    // The race against kubectl needs the operator's parallelism: a multi-thread runtime.
    let parallel = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let defaults = Some((
        safeapp::ratelimit::DEFAULT_QPS,
        safeapp::ratelimit::DEFAULT_BURST,
    ));
    parallel.block_on(failover(1_000));
    for apps in [200, 1_000] {
        parallel.block_on(against_kubectl(apps, LATENCY, None));
        parallel.block_on(against_kubectl(apps, LATENCY, defaults));
        parallel.block_on(against_kubectl(apps, REALISTIC_LATENCY, defaults));
    }
}

/// Round trip added to every request of the in-memory API in the race against kubectl.
const LATENCY: Duration = Duration::from_millis(5);
/// A round trip closer to a real API server's: kubectl took 35-45 ms per object there
/// (SAFEAPP.md: 600 objects in 27 s, 3,000 in 105 s).
const REALISTIC_LATENCY: Duration = Duration::from_millis(20);

/// `safeapp run`'s controller converging `apps` new SafeApps in one namespace, against
/// `kubectl apply --server-side` of the same rendered objects (one PATCH after another,
/// as kubectl sends them), on the same in-memory API with `latency` per request.
async fn against_kubectl(apps: usize, latency: Duration, limit: Option<(f64, u32)>) {
    let ns = "shop";
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    // kubectl: the rendered objects, applied in order.
    let kubectl = FakeApi::new();
    kubectl.set_latency(latency);
    let policy = Policy::default();
    let mut rendered = Vec::new();
    for i in 0..apps {
        let mut m = manifest(i);
        m["metadata"]["namespace"] = json!(ns);
        let app: SafeApp = serde_json::from_value(m).expect("typed");
        rendered.push(validate::validate(&app, &policy).expect("valid"));
    }
    let objects = render::render_all(&rendered, &policy);
    let client = kubectl.client();
    let started = Instant::now();
    for o in &objects {
        let v = o.to_json();
        let (api_version, kind) = (
            v["apiVersion"].as_str().unwrap_or(""),
            v["kind"].as_str().unwrap_or(""),
        );
        let plural = match kind {
            "Deployment" => "deployments",
            "Service" => "services",
            "PodDisruptionBudget" => "poddisruptionbudgets",
            "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
            "LimitRange" => "limitranges",
            _ => "resourcequotas",
        };
        let name = v["metadata"]["name"].as_str().unwrap_or("");
        let url = format!(
            "{}/{name}?fieldManager=kubectl&force=true",
            collection(api_version, ns, plural)
        );
        let request = http::Request::patch(url)
            .header("content-type", "application/apply-patch+yaml")
            .body(serde_json::to_vec(&v).expect("json"))
            .expect("request");
        client
            .request::<serde_json::Value>(request)
            .await
            .expect("kubectl apply");
    }
    let kubectl_time = started.elapsed();

    // The operator, as `safeapp run` runs it (concurrency 16).
    let fake = seeded(ns, apps);
    fake.set_latency(latency);
    let client = match limit {
        Some((qps, burst)) => fake.limited_client(qps, burst),
        None => fake.client(),
    };
    let started = Instant::now();
    let running = spawn_controller(client, ns);
    let deployments = collection("apps/v1", ns, "deployments");
    let limit_ranges = collection("v1", ns, "limitranges");
    loop {
        let done = fake.list(&deployments).len() == apps
            && fake.get(&limit_ranges, "safeapp-limits").is_some()
            && fake
                .list(&coll)
                .iter()
                .all(|a| a["status"]["observedGeneration"] == 1);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let operator_time = started.elapsed();
    let by_verb = |m: http::Method| fake.calls().iter().filter(|c| c.method == m).count();
    println!(
        "against kubectl ({} ms per request, operator rate limit {}): {apps} SafeApps converged in {:.2} s ({} GET, {} PATCH, {} POST, {} watch) vs kubectl apply --server-side of the same {} objects in {:.2} s: ratio {:.2} (target <= 0.5: {})",
        latency.as_millis(),
        limit.map_or("none".to_string(), |(q, b)| format!(
            "--qps {q} --burst {b}"
        )),
        operator_time.as_secs_f64(),
        by_verb(http::Method::GET)
            - fake
                .calls()
                .iter()
                .filter(|c| c.path.ends_with("?watch"))
                .count(),
        by_verb(http::Method::PATCH),
        by_verb(http::Method::POST),
        fake.calls()
            .iter()
            .filter(|c| c.path.ends_with("?watch"))
            .count(),
        objects.len(),
        kubectl_time.as_secs_f64(),
        operator_time.as_secs_f64() / kubectl_time.as_secs_f64(),
        if operator_time.as_secs_f64() <= 0.5 * kubectl_time.as_secs_f64() {
            "met"
        } else {
            "NOT met"
        },
    );
    running.stop().await;
}

/// Two replicas over `apps` SafeApps; the leader dies (it stops, and its Lease writes
/// fail, so it cannot release the Lease), a Deployment drifts: how long until the standby
/// has put it back. Target: within the lease duration + 5 s.
async fn failover(apps: usize) {
    use safeapp::operator::{RunOptions, run_with};
    let ns = "shop";
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    let fake = seeded(ns, apps);
    let replica = |id: &str| RunOptions {
        controller: safeapp::controller::RunConfig {
            policy: Policy::default(),
            resync: Duration::from_secs(300),
            concurrency: 16,
            namespace: Some(ns.into()),
            selector: None,
            watch_secrets: false,
        },
        metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        leader_elect: true,
        lease_namespace: ns.into(),
        lease_name: "safeapp-operator-leader".into(),
        lease: safeapp::leader::LeaseTiming::default(),
        identity: id.into(),
        qps: safeapp::ratelimit::DEFAULT_QPS,
        burst: safeapp::ratelimit::DEFAULT_BURST,
    };
    let (stop_a, rx_a) = tokio::sync::watch::channel(false);
    let leader = tokio::spawn(run_with(fake.client(), replica("replica-a"), rx_a));
    let deployments = collection("apps/v1", ns, "deployments");
    while fake.list(&deployments).len() < apps
        || !fake
            .list(&coll)
            .iter()
            .all(|a| a["status"]["observedGeneration"] == 1)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stop_b, rx_b) = tokio::sync::watch::channel(false);
    let standby = tokio::spawn(run_with(fake.client(), replica("replica-b"), rx_b));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The leader dies: it stops, and cannot release (or renew) its Lease.
    fake.fail(
        http::Method::PATCH,
        "fieldManager=safeapp-operator-lease-replica-a",
        500,
        usize::MAX,
    );
    leader.abort();
    drop(stop_a);
    let killed = Instant::now();
    let victim = &format!("app-{:05}", apps / 2);
    fake.edit(&deployments, victim, "kubectl-edit", json!({}), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("registry.example.com/evil:6.6.6");
    });
    loop {
        let image = fake.get(&deployments, victim).expect("deployment")["spec"]["template"]["spec"]
            ["containers"][0]["image"]
            .clone();
        if image == "registry.example.com/shop/web:1.4.2" {
            break;
        }
        if killed.elapsed() > Duration::from_secs(120) {
            println!("failover: {apps} SafeApps: drift NOT repaired within 120 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let repaired = killed.elapsed();
    println!(
        "failover: {apps} SafeApps, leader killed: drift repaired by the standby {:.1} s later (target <= lease {} s + 3 s: {})",
        repaired.as_secs_f64(),
        safeapp::leader::LEASE_DURATION_SECONDS,
        if repaired.as_secs_f64() <= (safeapp::leader::LEASE_DURATION_SECONDS + 3) as f64 {
            "met"
        } else {
            "NOT met"
        }
    );
    // SIGTERM to the new leader: stop taking work, finish what is in flight, release.
    let stopping = Instant::now();
    let _ = stop_b.send(true);
    let _ = standby.await;
    println!(
        "failover: {apps} SafeApps: the leader stopped {:.2} s after its stop signal (target <= 5 s)",
        stopping.elapsed().as_secs_f64()
    );
}

/// The in-memory API as the operator sees it, holding `apps` SafeApps in `ns`.
fn seeded(ns: &str, apps: usize) -> FakeApi {
    let fake = FakeApi::as_operator();
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    for i in 0..apps {
        let mut m = manifest(i);
        m["metadata"]["namespace"] = json!(ns);
        fake.insert(&coll, m);
    }
    fake
}

/// Cold start and API-server restart over `apps` converged SafeApps, against an
/// in-memory API with a real server's costs (20 ms per request, 300 µs per listed
/// object): the requests of the start (lists per collection, per-object GETs, writes),
/// the time to synced, and how fast a drift is repaired after each.
async fn recovery(apps: usize) {
    let ns = "shop";
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    let deployments = collection("apps/v1", ns, "deployments");
    let fake = seeded(ns, apps);
    let first = spawn_controller_with(fake.client(), ns, Duration::from_secs(3600));
    while fake
        .list(&coll)
        .iter()
        .filter(|a| a["status"]["observedGeneration"] == 1)
        .count()
        < apps
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.stop().await;

    fake.set_latency(REALISTIC_LATENCY);
    fake.set_list_cost(Duration::from_micros(300));
    fake.clear_calls();
    let started = Instant::now();
    let running = spawn_controller_with(fake.client(), ns, Duration::from_secs(3600));
    running.until_ready().await;
    let synced = started.elapsed();
    let drift_and_time = |victim: String| {
        let fake = fake.clone();
        let deployments = deployments.clone();
        async move {
            let made = Instant::now();
            fake.edit(&deployments, &victim, "kubectl-edit", json!({}), |d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"] =
                    json!("registry.example.com/evil:6.6.6");
            });
            loop {
                let image = fake.get(&deployments, &victim).expect("deployment")["spec"]
                    ["template"]["spec"]["containers"][0]["image"]
                    .clone();
                if image == "registry.example.com/shop/web:1.4.2" {
                    return Some(made.elapsed());
                }
                if made.elapsed() > Duration::from_secs(120) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let cold_repair = drift_and_time(format!("app-{:05}", apps / 2)).await;
    // The rest of the first 30 s, as on the real server.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(started.elapsed())).await;
    let calls = fake.calls();
    let mut lists: std::collections::BTreeMap<String, usize> = Default::default();
    let mut gets = 0;
    for c in calls.iter().filter(|c| c.method == http::Method::GET) {
        if c.path.ends_with("?watch") {
            continue;
        }
        let last = c.path.rsplit('/').next().unwrap_or_default();
        if last.starts_with("app-") || last == "safeapp-limits" {
            gets += 1;
        } else {
            *lists.entry(last.to_string()).or_insert(0) += 1;
        }
    }
    let writes = fake.writes();
    let status = writes
        .iter()
        .filter(|c| c.path.ends_with("/status"))
        .count();
    let events = writes.iter().filter(|c| c.path.contains("/events")).count();
    println!(
        "recovery: {apps} converged SafeApps, cold start (20 ms per request, 300 µs per listed object): synced {:.2} s after start; a drift made then repaired {} later",
        synced.as_secs_f64(),
        cold_repair.map_or("NOT within 120 s".into(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        ))
    );
    println!(
        "recovery: first 30 s: lists by kind {lists:?} (max {}); per-object GETs {gets}; writes {} (status patches {status}, Events {events}; the drift's repair is 1 apply)",
        lists.values().max().unwrap_or(&0),
        writes.len()
    );
    // The API server goes away for 25 s (every request 503, watches cut) and comes back.
    fake.set_available(false);
    tokio::time::sleep(Duration::from_secs(25)).await;
    fake.set_available(true);
    let restart_repair = drift_and_time(format!("app-{:05}", apps / 3)).await;
    println!(
        "recovery: {apps} SafeApps, a drift made as the API server came back from a 25 s outage: repaired {} later (target <= 15 s)",
        restart_repair.map_or("NOT within 120 s".into(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        ))
    );
    running.stop().await;
}

/// From `controller::run` to every watch listed and the SafeApp cache synced, with `apps`
/// SafeApps (one namespace, in-memory API). Stops right after.
async fn synced_at_scale(apps: usize) {
    let fake = FakeApi::new();
    for i in 0..apps {
        let mut m = manifest(i);
        m["metadata"]["namespace"] = json!("big");
        fake.insert(&collection("safeapp.dev/v1alpha1", "big", "safeapps"), m);
    }
    let started = Instant::now();
    let running = spawn_controller(fake.client(), "big");
    running.until_ready().await;
    println!(
        "start-up at scale: {apps} SafeApps synced {:.0} ms after start (in-memory API)",
        started.elapsed().as_secs_f64() * 1e3
    );
    running.stop().await;
}

/// A running `controller::run` over namespace `ns` of `client` (concurrency 16, 300 s
/// resync): the stop switch, its task, and the readiness flag.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

fn spawn_controller(client: kube::Client, ns: &str) -> Running {
    spawn_controller_with(client, ns, Duration::from_secs(300))
}

fn spawn_controller_with(client: kube::Client, ns: &str, resync: Duration) -> Running {
    spawn_controller_as(client, ns, resync, Policy::default())
}

fn spawn_controller_as(
    client: kube::Client,
    ns: &str,
    resync: Duration,
    policy: Policy,
) -> Running {
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };
    let config = safeapp::controller::RunConfig {
        policy,
        resync,
        concurrency: 16,
        namespace: Some(ns.into()),
        selector: None,
        watch_secrets: false,
    };
    let task = tokio::spawn(safeapp::controller::run(
        client,
        config,
        Arc::new(Metrics::default()),
        ready.clone(),
        futures::FutureExt::shared(futures::FutureExt::boxed(stopped)),
        futures::future::pending(),
    ));
    Running { stop, task, ready }
}

impl Running {
    async fn until_ready(&self) {
        while !self.ready.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.task).await;
    }
}

/// Status patches, child writes and Events of `safeapp run` over `apps` new SafeApps on
/// an in-memory API whose watches lag (SafeApps 400 ms, PDBs 1 s: the interleavings of
/// a loaded API server), through creation → progressing → available, then resyncs.
async fn status_economy(apps: usize) {
    let ns = "shop";
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    let deployments = collection("apps/v1", ns, "deployments");
    let fake = FakeApi::as_operator();
    fake.delay_watch("/safeapps", Duration::from_millis(400));
    fake.delay_watch("/poddisruptionbudgets", Duration::from_secs(1));
    for i in 0..apps {
        let mut m = manifest(i);
        m["metadata"]["namespace"] = json!(ns);
        fake.insert(&coll, m);
    }
    let resync = Duration::from_secs(5);
    let running = spawn_controller_with(fake.client(), ns, resync);
    let count = |check: &dyn Fn(&serde_json::Value) -> bool| {
        fake.list(&coll).iter().filter(|a| check(a)).count()
    };
    let wait = |check: &'static (dyn Fn(&serde_json::Value) -> bool + Sync)| {
        let fake = fake.clone();
        let coll = coll.clone();
        async move {
            let started = Instant::now();
            while fake.list(&coll).iter().filter(|a| check(a)).count() < apps {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            started.elapsed()
        }
    };
    let converge = wait(&|a| a["status"]["observedGeneration"] == 1).await;
    // Past every lagging watch event.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tally = |fake: &FakeApi| {
        let w = fake.writes();
        let status = w.iter().filter(|c| c.path.ends_with("/status")).count();
        let events = w.iter().filter(|c| c.path.contains("/events")).count();
        (status, w.len() - status - events, events)
    };
    let (status_new, children_new, events_new) = tally(&fake);
    // The Deployment controller: progressing, then available, every app at once.
    let set_all = |st: &dyn Fn(&serde_json::Value) -> serde_json::Value| {
        for d in fake.list(&deployments) {
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let status = st(&d);
            fake.edit(
                &deployments,
                &name,
                "kube-controller-manager",
                json!({}),
                |d| d["status"] = status,
            );
        }
    };
    fake.clear_calls();
    let replicas = |d: &serde_json::Value| d["spec"]["replicas"].as_i64().unwrap_or(1);
    set_all(&|d| {
        json!({"observedGeneration": d["metadata"]["generation"], "replicas": replicas(d),
               "updatedReplicas": replicas(d), "unavailableReplicas": replicas(d)})
    });
    let progressing = wait(&|a| a["status"]["updatedReplicas"].as_i64().unwrap_or(0) > 0).await;
    set_all(&|d| {
        json!({"observedGeneration": d["metadata"]["generation"], "replicas": replicas(d),
               "updatedReplicas": replicas(d), "readyReplicas": replicas(d),
               "availableReplicas": replicas(d)})
    });
    let available = wait(&|a| {
        a["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|x| x["type"] == "Ready" && x["status"] == "True")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status_changes, children_changes, _) = tally(&fake);
    // Resyncs with nothing new.
    fake.clear_calls();
    tokio::time::sleep(resync * 3).await;
    let (status_resync, children_resync, events_resync) = tally(&fake);
    let _ = count(&|_| true);
    let per = |n: usize| n as f64 / apps as f64;
    println!(
        "status economy, {apps} new SafeApps (watches lagging: SafeApps 400 ms, PDBs 1 s): converged in {:.2} s with {:.2} status patches, {:.2} child writes and {:.2} Events per app; two Deployment status changes (progressing in {:.2} s, available in {:.2} s after each change): {:.2} status patches and {:.2} child writes per app; three resyncs ({} s): {} status patches, {} child writes, {} Events",
        converge.as_secs_f64(),
        per(status_new),
        per(children_new),
        per(events_new),
        progressing.as_secs_f64(),
        available.as_secs_f64(),
        per(status_changes),
        per(children_changes),
        resync.as_secs(),
        status_resync,
        children_resync,
        events_resync,
    );
    running.stop().await;
}

/// A new operator policy over `apps` converged SafeApps with `slots` upgrade slots, and a
/// simulated Deployment controller whose rollouts take `rollout`: how long the whole
/// upgrade takes against ⌈apps/slots⌉·rollout, how long each hand-over takes (a rollout's
/// end to the next one's start), and the most that rolled at once.
async fn staged_upgrade(apps: usize, slots: u32, rollout: Duration) {
    let ns = "shop";
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    let deployments = collection("apps/v1", ns, "deployments");
    let fake = FakeApi::as_operator();
    for i in 0..apps {
        let mut m = manifest(i);
        m["metadata"]["namespace"] = json!(ns);
        m["spec"]["replicas"] = json!(1);
        fake.insert(&coll, m);
    }
    let (stats, simulator) = fake.deployment_controller(&deployments, rollout);
    let hour = Duration::from_secs(3600);
    let v1 = spawn_controller_as(fake.client(), ns, hour, Policy::default());
    let ready = |a: &serde_json::Value| {
        a["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|x| x["type"] == "Ready" && x["status"] == "True")
        })
    };
    while fake.list(&coll).iter().filter(|a| ready(a)).count() < apps {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    v1.stop().await;
    *stats.lock().expect("stats") = fake::RolloutStats::default();
    let mut next = Policy::default();
    next.defaults.pre_stop_sleep_seconds = 7;
    next.upgrades.max_concurrent_template_upgrades = slots;
    let started = Instant::now();
    let v2 = spawn_controller_as(fake.client(), ns, hour, next);
    while stats.lock().expect("stats").finished < apps {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let st = stats.lock().expect("stats").clone();
    let mut hand_overs = st.hand_overs.clone();
    hand_overs.sort();
    let pct = |p: f64| {
        hand_overs
            .get(((hand_overs.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    let ideal = rollout * u32::try_from(apps.div_ceil(slots as usize)).unwrap_or(u32::MAX);
    println!(
        "staged upgrade: {apps} apps, {slots} slots, rollouts of {} ms: all upgraded in {:.1} s (⌈N/S⌉·D = {:.1} s; {:.2} s over it, {:.3} s per round); most rolling at once {}; hand-over (a rollout's end to the next start) p50 {} ms, p99 {} ms, max {} ms",
        rollout.as_millis(),
        took.as_secs_f64(),
        ideal.as_secs_f64(),
        took.as_secs_f64() - ideal.as_secs_f64(),
        (took.as_secs_f64() - ideal.as_secs_f64()) / apps.div_ceil(slots as usize) as f64,
        st.most_at_once,
        pct(0.5).as_millis(),
        pct(0.99).as_millis(),
        pct(1.0).as_millis(),
    );
    v2.stop().await;
    simulator.abort();
}

/// `apps` SafeApps with a one-step canary (50% for 40 s, by replica ratio) released at
/// once by the running controller, with the Deployment controller played by
/// `FakeApi::deployment_controller` (a rollout takes 1 s): how soon every canary starts, what a
/// canary costs in API requests while its step is watched, how soon after the step's
/// end every canary is promoted, and what it wrote.
async fn canaries(apps: usize) {
    let ns = "shop";
    let coll = collection("safeapp.dev/v1alpha1", ns, "safeapps");
    let deployments = collection("apps/v1", ns, "deployments");
    let fake = FakeApi::as_operator();
    for i in 0..apps {
        let mut m = manifest(i);
        m["metadata"]["namespace"] = json!(ns);
        m["spec"]["replicas"] = json!(2);
        m["spec"]["rollout"] = json!({"canary": {"steps": [{"weight": 50, "pause": "40s"}]}});
        fake.insert(&coll, m);
    }
    let running = spawn_controller_with(fake.client(), ns, Duration::from_secs(300));
    // The Deployment controller, driven by the fake's change feed: each new generation
    // is available 1 s later (no pods: the canary's have no restarts to find).
    let (_, kubelet) = fake.deployment_controller(&deployments, Duration::from_secs(1));
    let all = |phase: &'static str| {
        let fake = fake.clone();
        let coll = coll.clone();
        async move {
            let started = Instant::now();
            loop {
                let n = fake
                    .list(&coll)
                    .iter()
                    .filter(|a| match phase {
                        "Ready" => a["status"]["conditions"].as_array().is_some_and(|c| {
                            c.iter()
                                .any(|x| x["type"] == "Ready" && x["status"] == "True")
                        }),
                        p => a["status"]["canary"]["phase"] == p,
                    })
                    .count();
                if n >= apps {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let ready = all("Ready").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    fake.clear_calls();
    let changed = Instant::now();
    for i in 0..apps {
        fake.edit(&coll, &format!("app-{i:05}"), "kubectl", json!({}), |a| {
            a["spec"]["image"] = json!("registry.example.com/shop/web:1.5.0");
        });
    }
    let started = all("Progressing").await;
    // The step being watched: 30 s from 2 s after the last start (before any ends).
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(changed.elapsed().saturating_sub(started)),
    )
    .await;
    fake.clear_calls();
    let window = Duration::from_secs(30);
    tokio::time::sleep(window).await;
    let during = fake.calls();
    let lists = during
        .iter()
        .filter(|c| c.method == http::Method::GET && c.path.contains("/pods"))
        .count();
    let writes = during
        .iter()
        .filter(|c| c.method != http::Method::GET)
        .count();
    let gets = during.len() - lists - writes;
    all("Succeeded").await;
    let succeeded = changed.elapsed();
    let since_end = succeeded.saturating_sub(started + Duration::from_secs(40));
    let stable_new = fake
        .list(&deployments)
        .iter()
        .filter(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !n.ends_with("-canary"))
        })
        .filter(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                == "registry.example.com/shop/web:1.5.0"
        })
        .count();
    println!(
        "canary/{apps}_apps: all Ready in {:.2} s; image changed on all: every canary started in {:.2} s; \
         during the step, per app per minute: {:.1} pod lists, {:.1} other reads, {:.1} writes ({} requests in {} s); \
         all Succeeded {:.2} s after the change ({:.2} s after the last 40 s step could end; a rollout takes 1 s); {stable_new} stable Deployments on the new image",
        ready.as_secs_f64(),
        started.as_secs_f64(),
        lists as f64 / apps as f64 * 60.0 / window.as_secs_f64(),
        gets as f64 / apps as f64 * 60.0 / window.as_secs_f64(),
        writes as f64 / apps as f64 * 60.0 / window.as_secs_f64(),
        during.len(),
        window.as_secs(),
        succeeded.as_secs_f64(),
        since_end.as_secs_f64(),
    );
    kubelet.abort();
    running.stop().await;
}
