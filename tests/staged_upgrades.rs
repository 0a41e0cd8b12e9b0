//! Staged operator upgrades in the running controller, against the in-memory API with a
//! simulated Deployment controller: slots hand over on the Deployments' own status
//! events (the resync is an hour away, so no timer can do it), never more than the limit
//! roll at once — also across a leader change in the middle.

mod fake;

use std::time::Duration;

use fake::running::{self, Running, until};
use fake::{FakeApi, collection};
use safeapp::policy::Policy;
use serde_json::json;

const NS: &str = "shop";

fn apps() -> String {
    collection("safeapp.dev/v1alpha1", NS, "safeapps")
}
fn deployments() -> String {
    collection("apps/v1", NS, "deployments")
}

fn start(fake: &FakeApi, policy: Policy) -> Running {
    running::start(fake, NS, policy, Duration::from_secs(3600), 8)
}

fn next_version(slots: u32) -> Policy {
    let mut p = Policy::default();
    p.defaults.pre_stop_sleep_seconds = 7;
    p.upgrades.max_concurrent_template_upgrades = slots;
    p
}

fn pre_stop(fake: &FakeApi, name: &str) -> i64 {
    fake.get(&deployments(), name).expect("deployment")["spec"]["template"]["spec"]["containers"][0]
        ["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap_or_default()
}

/// Every app's Deployment available on the new template (preStop 7 s, not paused).
fn all_upgraded(fake: &FakeApi, n: usize) -> bool {
    (0..n).all(|i| {
        let name = format!("app-{i}");
        let Some(d) = fake.get(&deployments(), &name) else {
            return false;
        };
        pre_stop(fake, &name) == 7
            && d["spec"]["paused"] != true
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["availableReplicas"] == d["spec"]["replicas"]
            && d["status"]["updatedReplicas"] == d["spec"]["replicas"]
    })
}

// A new operator version over 6 apps, 2 slots, rollouts of 300 ms, one app deferred:
// the 5 others roll, never more than 2 at once, each freed slot taken at once from the
// Deployment's event (well inside 1 s; the resync is an hour); the deferred app keeps
// its old template and holds no slot. Halfway, the leader changes: the new one reads
// the slot holders from the SafeApps' status and still runs at most 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_hand_over_on_events_and_across_a_leader_change() {
    const APPS: usize = 6;
    const ROLLOUT: Duration = Duration::from_millis(300);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let fake = FakeApi::as_operator();
    for i in 0..APPS {
        fake.insert(
            &apps(),
            json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
                   "metadata": {"name": format!("app-{i}"), "namespace": NS},
                   "spec": {"image": "registry.example.com/web:1.0.0", "replicas": 1,
                            "ports": [{"name": "http", "port": 8080}]}}),
        );
    }
    let (stats, controller_task) = fake.deployment_controller(&deployments(), ROLLOUT);
    let v1 = start(&fake, Policy::default());
    until("v1 available", Duration::from_secs(20), || {
        fake.list(&apps()).iter().all(|a| {
            a["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|x| x["type"] == "Ready" && x["status"] == "True")
            })
        }) && fake.list(&apps()).len() == APPS
    })
    .await;
    v1.stop().await;
    fake.edit(&apps(), "app-5", "kubectl-annotate", json!({}), |a| {
        a["metadata"]["annotations"] = json!({"safeapp.dev/upgrade": "defer"})
    });
    *stats.lock().unwrap() = fake::RolloutStats::default();

    // The new version: the upgrade is staged through 2 slots.
    let v2 = start(&fake, next_version(2));
    until("two rollouts finished", Duration::from_secs(20), || {
        stats.lock().unwrap().finished >= 2
    })
    .await;
    // The leader changes in the middle of the upgrade.
    v2.stop().await;
    let holders = fake
        .list(&apps())
        .iter()
        .filter(|a| a["status"]["upgradeSlot"].is_string())
        .count();
    assert!(holders <= 2, "{holders} slot holders recorded");
    let v2b = start(&fake, next_version(2));
    let took = until(
        "every app but the deferred one upgraded",
        Duration::from_secs(30),
        || all_upgraded(&fake, APPS - 1),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = stats.lock().unwrap().clone();
    println!("upgrade after the leader change took {took:?}; {st:?}");
    assert!(st.most_at_once <= 2, "at most 2 rolled at once: {st:?}");
    assert_eq!(st.finished, APPS - 1, "{st:?}");
    assert_eq!(
        pre_stop(&fake, "app-5"),
        7,
        "the deferred app has the new template, paused"
    );
    assert_eq!(
        fake.get(&deployments(), "app-5").unwrap()["spec"]["paused"],
        true
    );
    assert!(
        fake.get(&apps(), "app-5").unwrap()["status"]
            .get("upgradeSlot")
            .is_none(),
        "the deferred app holds no slot"
    );
    until("every slot freed in status", Duration::from_secs(5), || {
        fake.list(&apps())
            .iter()
            .all(|a| a["status"].get("upgradeSlot").is_none())
    })
    .await;
    v2b.stop().await;
    controller_task.abort();
}
