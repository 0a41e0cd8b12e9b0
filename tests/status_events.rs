//! Status follows events, never timers, and converging costs each write once: the
//! running controller (watches, caches, debounce) against the in-memory API, with watch
//! events made to lag behind the writes the way a loaded API server's do.

mod fake;

use std::collections::BTreeMap;
use std::time::Duration;

use fake::running::{self, Running};
use fake::{FakeApi, collection};
use safeapp::policy::Policy;
use serde_json::{Value, json};

const NS: &str = "shop";

fn apps() -> String {
    collection("safeapp.dev/v1alpha1", NS, "safeapps")
}
fn deployments() -> String {
    collection("apps/v1", NS, "deployments")
}

fn insert_app(fake: &FakeApi, name: &str) {
    fake.insert(
        &apps(),
        json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
               "metadata": {"name": name, "namespace": NS},
               "spec": {"image": "registry.example.com/web:1.0.0",
                        "ports": [{"name": "http", "port": 8080}],
                        "healthCheck": {"path": "/health"}}}),
    );
}

fn start(fake: &FakeApi, resync: Duration) -> Running {
    running::start(fake, NS, Policy::default(), resync, 8)
}

async fn eventually(what: &str, limit: Duration, check: impl FnMut() -> bool) -> Duration {
    running::until(what, limit, check).await
}

/// Writes since the last `clear_calls`, counted by path (status patches, children,
/// Events).
fn writes_by_path(fake: &FakeApi) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in fake.writes() {
        *out.entry(c.path).or_insert(0) += 1;
    }
    out
}

fn status_patches(fake: &FakeApi) -> usize {
    fake.writes()
        .iter()
        .filter(|c| c.path.ends_with("/status"))
        .count()
}

fn event_posts(fake: &FakeApi) -> usize {
    fake.writes()
        .iter()
        .filter(|c| c.path.contains("/events"))
        .count()
}

/// Plays the Deployment controller on every Deployment: `status(replicas)`.
fn set_all_deployment_status(fake: &FakeApi, status: impl Fn(&Value) -> Value) {
    for d in fake.list(&deployments()) {
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        let st = status(&d);
        fake.edit(
            &deployments(),
            &name,
            "kube-controller-manager",
            json!({}),
            |d| d["status"] = st,
        );
    }
}

fn count_apps(fake: &FakeApi, check: impl Fn(&Value) -> bool) -> usize {
    fake.list(&apps()).iter().filter(|a| check(a)).count()
}

fn ready(app: &Value) -> bool {
    app["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|x| x["type"] == "Ready" && x["status"] == "True")
    })
}

// A Deployment status change reaches its SafeApp's status through the watch, with the
// resync an hour away: the delay is the debounce plus one reconcile, well inside 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_status_change_reaches_the_status_through_the_watch() {
    let fake = FakeApi::as_operator();
    insert_app(&fake, "web");
    let running = start(&fake, Duration::from_secs(3600));
    eventually("converged", Duration::from_secs(20), || {
        fake.get(&apps(), "web")
            .is_some_and(|a| a["status"]["observedGeneration"] == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.clear_calls();
    set_all_deployment_status(&fake, |d| {
        json!({"observedGeneration": d["metadata"]["generation"], "replicas": 2,
               "updatedReplicas": 2, "unavailableReplicas": 2})
    });
    let progressing = eventually("updatedReplicas in status", Duration::from_secs(5), || {
        fake.get(&apps(), "web")
            .is_some_and(|a| a["status"]["updatedReplicas"] == 2)
    })
    .await;
    set_all_deployment_status(&fake, |d| {
        json!({"observedGeneration": d["metadata"]["generation"], "replicas": 2,
               "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2})
    });
    let available = eventually("Ready=True", Duration::from_secs(5), || {
        fake.get(&apps(), "web").is_some_and(|a| ready(&a))
    })
    .await;
    println!(
        "status followed the Deployment in {progressing:?} (progressing) and {available:?} (available)"
    );
    assert_eq!(
        status_patches(&fake),
        2,
        "one status patch per change: {:?}",
        writes_by_path(&fake)
    );
    running.stop().await;
}

// 200 new SafeApps, with the SafeApps' watch events arriving 400 ms after each write
// and the PodDisruptionBudgets' 1 s after (the interleavings that re-applied every
// child and patched every status twice): every child is written once, each app costs
// one status patch and one Event; each real change of the Deployments' status costs one
// status patch per app; resyncs where nothing changed write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_apps_converge_with_one_write_per_child_and_status() {
    const APPS: usize = 200;
    let fake = FakeApi::as_operator();
    fake.delay_watch("/safeapps", Duration::from_millis(400));
    fake.delay_watch("/poddisruptionbudgets", Duration::from_secs(1));
    for i in 0..APPS {
        insert_app(&fake, &format!("app-{i:03}"));
    }
    let resync = Duration::from_secs(2);
    let running = start(&fake, resync);
    eventually("every app converged", Duration::from_secs(60), || {
        count_apps(&fake, |a| a["status"]["observedGeneration"] == 1) == APPS
    })
    .await;
    // Past the lag of every watch, and a resync.
    tokio::time::sleep(resync + Duration::from_millis(1500)).await;

    let writes = writes_by_path(&fake);
    for i in 0..APPS {
        let name = format!("app-{i:03}");
        let children: Vec<(&String, &usize)> = writes
            .iter()
            .filter(|(p, _)| p.ends_with(&format!("/{name}")) && !p.contains("/safeapps/"))
            .collect();
        assert_eq!(
            children.len(),
            4,
            "{name}: Deployment, Service, PDB, NetworkPolicy: {children:?}"
        );
        assert!(
            children.iter().all(|(_, n)| **n == 1),
            "{name}: each child once: {children:?}"
        );
    }
    assert_eq!(status_patches(&fake), APPS, "one status patch per new app");
    let events = event_posts(&fake);
    assert!(events <= APPS, "{events} Events for {APPS} new apps");

    // The Deployment controller at work: progressing, then available.
    fake.clear_calls();
    set_all_deployment_status(&fake, |d| {
        json!({"observedGeneration": d["metadata"]["generation"], "replicas": 2,
               "updatedReplicas": 2, "unavailableReplicas": 2})
    });
    eventually("every status progressing", Duration::from_secs(30), || {
        count_apps(&fake, |a| a["status"]["updatedReplicas"] == 2) == APPS
    })
    .await;
    set_all_deployment_status(&fake, |d| {
        json!({"observedGeneration": d["metadata"]["generation"], "replicas": 2,
               "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2})
    });
    eventually("every app Ready", Duration::from_secs(30), || {
        count_apps(&fake, ready) == APPS
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_patches(&fake),
        2 * APPS,
        "one status patch per app per real change"
    );
    let children: usize = fake
        .writes()
        .iter()
        .filter(|c| !c.path.ends_with("/status") && !c.path.contains("/events"))
        .count();
    assert_eq!(children, 0, "status changes write no child");

    // Resyncs of converged apps: nothing new, nothing written.
    fake.clear_calls();
    tokio::time::sleep(resync * 2 + Duration::from_millis(500)).await;
    assert_eq!(fake.writes().len(), 0, "{:?}", writes_by_path(&fake));
    running.stop().await;
}

// Many reconciles waiting at once for the children's caches all go as soon as the
// caches have listed: the Deployment list fails twice first, so every app's reconcile
// waits, and all 40 converge within seconds (the caches' own readiness futures keep a
// single waker: all but one waiter used to sleep out the 30 s cache timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_waiting_for_the_caches_all_go_when_they_list() {
    const APPS: usize = 40;
    let fake = FakeApi::as_operator();
    for i in 0..APPS {
        insert_app(&fake, &format!("app-{i:02}"));
    }
    fake.fail(http::Method::GET, "/deployments?", 500, 2);
    let running = start(&fake, Duration::from_secs(3600));
    let took = eventually("every app converged", Duration::from_secs(15), || {
        count_apps(&fake, |a| a["status"]["observedGeneration"] == 1) == APPS
    })
    .await;
    println!("{APPS} apps converged {took:?} after start, the Deployment list failing twice first");
    running.stop().await;
}

// The API server goes down for 25 s (every request 503, open watches cut) and comes
// back: a drift made right after is repaired within seconds. Neither a watch nor the
// Controller's trigger stream sleeps longer than 5 s between tries (kube's defaults grow
// to 30 s, and the Controller's put every trigger behind the errors of one watch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_after_an_api_server_restart_is_repaired_within_seconds() {
    let fake = FakeApi::as_operator();
    for i in 0..10 {
        insert_app(&fake, &format!("app-{i:02}"));
    }
    let running = start(&fake, Duration::from_secs(3600));
    eventually("converged", Duration::from_secs(20), || {
        count_apps(&fake, |a| a["status"]["observedGeneration"] == 1) == 10
    })
    .await;
    fake.set_available(false);
    tokio::time::sleep(Duration::from_secs(25)).await;
    fake.set_available(true);
    fake.edit(
        &deployments(),
        "app-03",
        "kubectl-edit",
        json!({"f:spec": {"f:minReadySeconds": {}}}),
        |d| d["spec"]["minReadySeconds"] = json!(99),
    );
    let took = eventually("the drift repaired", Duration::from_secs(8), || {
        fake.get(&deployments(), "app-03")
            .is_some_and(|d| d["spec"]["minReadySeconds"] != 99)
    })
    .await;
    println!("drift repaired {took:?} after the API server came back");
    running.stop().await;
}

// A restart over 200 converged apps, with nothing changed: every watched kind is listed
// once per cache (objects, and names), no child is read one by one, and nothing is
// written — no status patch, no apply, no Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_lists_once_and_writes_nothing() {
    const APPS: usize = 200;
    let fake = FakeApi::as_operator();
    for i in 0..APPS {
        insert_app(&fake, &format!("app-{i:03}"));
    }
    let first = start(&fake, Duration::from_secs(3600));
    eventually("converged", Duration::from_secs(60), || {
        count_apps(&fake, |a| a["status"]["observedGeneration"] == 1) == APPS
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.stop().await;
    fake.clear_calls();
    let second = start(&fake, Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = fake.calls();
    let mut lists: BTreeMap<String, usize> = BTreeMap::new();
    let mut gets = Vec::new();
    for c in calls.iter().filter(|c| c.method == http::Method::GET) {
        if c.path.ends_with("?watch") {
            continue;
        }
        let last = c.path.rsplit('/').next().unwrap_or_default();
        let plural = last.chars().all(|ch| ch.is_ascii_lowercase());
        let is_list = plural && !last.starts_with("app-") && last != "safeapp-limits";
        if is_list {
            *lists.entry(c.path.clone()).or_insert(0) += 1;
        } else {
            gets.push(c.path.clone());
        }
    }
    assert!(
        lists.values().all(|n| *n <= 2),
        "each kind listed at most twice (objects and names): {lists:?}"
    );
    assert_eq!(gets, Vec::<String>::new(), "no object read one by one");
    assert_eq!(fake.writes().len(), 0, "{:?}", writes_by_path(&fake));
    second.stop().await;
}
