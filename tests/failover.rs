//! Leader election under fire, on the in-memory API: replicas of `safeapp run` killed
//! (their task dropped, their Lease writes failing, as after SIGKILL) at every point of
//! their start-up, many times over, and a leader that cannot sync its watches.
//!
//! A failover that silently does not happen is the worst outcome an HA setup can have:
//! every kill here must be followed by a takeover that repairs a drift within the lease
//! duration + 3 s, and a leader that has not synced must say so on `/readyz`.

mod fake;

use std::time::{Duration, Instant};

use fake::{FakeApi, collection};
use safeapp::controller::RunConfig;
use safeapp::leader::LeaseTiming;
use safeapp::operator::{RunError, RunOptions, run_with};
use safeapp::policy::Policy;
use serde_json::json;
use tokio::sync::watch;

const LEASE: &str = "safeapp-operator-leader";
const GOOD: &str = "registry.example.com/web:1.0.0";

fn deployments() -> String {
    collection("apps/v1", "shop", "deployments")
}

fn leases() -> String {
    collection("coordination.k8s.io/v1", "shop", "leases")
}

fn insert_apps(fake: &FakeApi, n: usize) {
    for i in 0..n {
        fake.insert(
            &collection("safeapp.dev/v1alpha1", "shop", "safeapps"),
            json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
                   "metadata": {"name": format!("app-{i:02}"), "namespace": "shop"},
                   "spec": {"image": GOOD, "ports": [{"name": "http", "port": 8080}]}}),
        );
    }
}

fn options(identity: &str, lease_seconds: u64, admin: std::net::SocketAddr) -> RunOptions {
    RunOptions {
        controller: RunConfig {
            policy: Policy::default(),
            resync: Duration::from_secs(3600),
            concurrency: 4,
            namespace: Some("shop".into()),
            selector: None,
            watch_secrets: false,
        },
        metrics_addr: admin,
        leader_elect: true,
        lease_namespace: "shop".into(),
        lease_name: LEASE.into(),
        lease: LeaseTiming::with_duration(lease_seconds),
        identity: identity.into(),
        qps: safeapp::ratelimit::DEFAULT_QPS,
        burst: safeapp::ratelimit::DEFAULT_BURST,
    }
}

/// A replica of `safeapp run`.
struct Replica {
    identity: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl Replica {
    fn start(fake: &FakeApi, identity: &str, lease_seconds: u64) -> Self {
        let admin = "127.0.0.1:0".parse().expect("addr");
        Self::start_on(fake, identity, lease_seconds, admin)
    }

    fn start_on(
        fake: &FakeApi,
        identity: &str,
        lease_seconds: u64,
        admin: std::net::SocketAddr,
    ) -> Self {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run_with(
            fake.client(),
            options(identity, lease_seconds, admin),
            rx,
        ));
        Self {
            identity: identity.into(),
            stop,
            task,
        }
    }

    /// SIGKILL: the process is gone at once. It releases nothing: its Lease writes fail
    /// from now on (kube-lease-manager's own task would otherwise go on), and its watches,
    /// caches and reconciles are dropped with its task.
    fn kill(self, fake: &FakeApi) {
        let manager = safeapp::leader::field_manager(&self.identity);
        fake.fail(
            http::Method::PATCH,
            &format!("fieldManager={manager}"),
            500,
            usize::MAX,
        );
        fake.fail(
            http::Method::PUT,
            &format!("fieldManager={manager}"),
            500,
            usize::MAX,
        );
        self.task.abort();
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn holder(fake: &FakeApi) -> Option<String> {
    fake.get(&leases(), LEASE)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

fn image(fake: &FakeApi, name: &str) -> Option<String> {
    fake.get(&deployments(), name).and_then(|d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .map(str::to_string)
    })
}

/// Polls `check` every 10 ms for at most `limit`; the time it took, or None.
async fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Ten leaders in a row are killed at a different point of their start-up each: the
// instant they won the Lease (before their first reconcile), while their term's first
// reconciles run, once settled. Each time, a replica started when the previous leader
// won (so, for the short offsets, itself still warming up) must win the Lease within the
// lease duration + 3 s of the kill; a leader that lived 400 ms has repaired every drift
// made at the kills before it; and the last one repairs all. Nothing a kill leaves behind
// (a Lease never released, watches cut mid-list, reconciles cut mid-write) may stop the
// next takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_at_any_point_of_its_start_up_is_replaced() {
    const LEASE_SECONDS: u64 = 3;
    const APPS: usize = 12;
    let limit = Duration::from_secs(LEASE_SECONDS + 3);
    let fake = FakeApi::as_operator();
    insert_apps(&fake, APPS);
    let all_good =
        |f: &FakeApi| (0..APPS).all(|i| image(f, &format!("app-{i:02}")).as_deref() == Some(GOOD));

    let mut leader = Replica::start(&fake, "replica-00", LEASE_SECONDS);
    within(Duration::from_secs(20), || all_good(&fake))
        .await
        .expect("replica-00 converges the apps");
    assert_eq!(holder(&fake).as_deref(), Some("replica-00"));
    let mut won = Instant::now();

    // Milliseconds after the leader won the Lease at which it is killed.
    let offsets = [0, 0, 20, 50, 100, 200, 400, 800, 1500, 2500];
    let mut took = Vec::new();
    for (round, offset) in offsets.into_iter().enumerate() {
        // Zero-padded: no identity is a prefix of another (the kill matches on it).
        let next = format!("replica-{:02}", round + 1);
        let standby = Replica::start(&fake, &next, LEASE_SECONDS);
        tokio::time::sleep_until((won + Duration::from_millis(offset)).into()).await;
        if offset >= 400 {
            assert!(
                all_good(&fake),
                "round {round}: {} led {offset} ms and left a drift unrepaired",
                leader.identity
            );
        }
        let killed = leader.identity.clone();
        leader.kill(&fake);
        let victim = format!("app-{:02}", round % APPS);
        let evil = format!("registry.example.com/evil:{round}");
        fake.edit(&deployments(), &victim, "kubectl-edit", json!({}), |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(evil);
        });
        let Some(takeover) =
            within(limit, || holder(&fake).as_deref() == Some(next.as_str())).await
        else {
            panic!(
                "round {round}: {killed} killed {offset} ms after it won the Lease; {next} \
                 did not take over within {limit:?} (holder {:?})",
                holder(&fake)
            );
        };
        won = Instant::now();
        took.push((offset, takeover));
        leader = standby;
    }
    println!("killed at (ms after winning) -> next leader after: {took:?}");
    let repaired = within(limit, || all_good(&fake)).await;
    assert!(repaired.is_some(), "the last leader repairs every drift");
    leader.stop().await;
}

/// `GET path` on the admin server at `addr`: the status code and the body.
async fn admin_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    })
    .await
    .ok()??;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

// A leader that cannot sync (here the API server refuses every list of Deployments)
// reconciles nothing and says so: `/readyz` answers 503 naming how long it has led
// unsynced, and `safeapp_leader_synced` is 0. Once the lists succeed it syncs, repairs,
// and turns ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_has_not_synced_says_so() {
    let fake = FakeApi::as_operator();
    insert_apps(&fake, 2);
    fake.fail(http::Method::GET, "/deployments", 500, usize::MAX);
    let admin = free_port();
    let replica = Replica::start_on(&fake, "replica-a", 3, admin);
    within(Duration::from_secs(10), || {
        holder(&fake).as_deref() == Some("replica-a")
    })
    .await
    .expect("replica-a leads");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, body) = admin_get(admin, "/readyz").await.expect("readyz answers");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("leading for") && body.contains("watches not synced"),
        "{body}"
    );
    let (_, metrics) = admin_get(admin, "/metrics").await.expect("metrics");
    assert!(metrics.contains("safeapp_leader 1"), "{metrics}");
    assert!(metrics.contains("safeapp_leader_synced 0"), "{metrics}");
    assert!(
        fake.get(&deployments(), "app-00").is_none(),
        "nothing reconciled before the children's caches listed"
    );

    fake.clear_failures();
    within(Duration::from_secs(10), || {
        image(&fake, "app-00").as_deref() == Some(GOOD)
    })
    .await
    .expect("reconciles once the Deployments list");
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin_get(admin, "/readyz").await.map(|(c, _)| c) != Some(200) {
        assert!(Instant::now() < deadline, "ready once synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = admin_get(admin, "/metrics").await.expect("metrics");
    assert!(metrics.contains("safeapp_leader_synced 1"), "{metrics}");
    replica.stop().await;
}
