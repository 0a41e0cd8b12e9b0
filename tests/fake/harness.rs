//! The reconcilers driven directly against the in-memory API, as the controller would
//! drive them: one namespace, helpers to create SafeApps, reconcile them and read what
//! the fake holds. Shared by the reconcile tests (tests/controller.rs, tests/rollouts.rs).

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use safeapp::api::SafeApp;
use safeapp::controller::{self, Context};
use safeapp::metrics::Metrics;
use safeapp::policy::Policy;
use serde_json::{Value, json};

use super::{FakeApi, collection};

pub const NS: &str = "shop";

pub fn apps() -> String {
    collection("safeapp.dev/v1alpha1", NS, "safeapps")
}
pub fn deployments() -> String {
    collection("apps/v1", NS, "deployments")
}
pub fn services() -> String {
    collection("v1", NS, "services")
}
pub fn pdbs() -> String {
    collection("policy/v1", NS, "poddisruptionbudgets")
}
pub fn hpas() -> String {
    collection("autoscaling/v2", NS, "horizontalpodautoscalers")
}
pub fn limit_ranges() -> String {
    collection("v1", NS, "limitranges")
}
pub fn quotas() -> String {
    collection("v1", NS, "resourcequotas")
}
pub fn safejobs() -> String {
    collection("safeapp.dev/v1alpha1", NS, "safejobs")
}
pub fn jobs() -> String {
    collection("batch/v1", NS, "jobs")
}
pub fn cronjobs() -> String {
    collection("batch/v1", NS, "cronjobs")
}

pub struct Env {
    pub fake: FakeApi,
    pub ctx: Context,
    pub metrics: Arc<Metrics>,
}

pub fn env_with(policy: Policy) -> Env {
    env_on(FakeApi::as_operator(), policy)
}

/// An operator with `policy` over an existing in-memory API.
pub fn env_on(fake: FakeApi, policy: Policy) -> Env {
    let metrics = Arc::new(Metrics::default());
    let ctx = Context::new(
        fake.client(),
        policy,
        metrics.clone(),
        Duration::from_secs(300),
    );
    Env { fake, ctx, metrics }
}

pub fn env() -> Env {
    env_with(Policy::default())
}

pub fn safeapp(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

pub fn web_spec() -> Value {
    json!({"image": "registry.example.com/web:1.0.0", "ports": [{"name": "http", "port": 8080}],
           "healthCheck": {"path": "/health"}, "tier": "backend"})
}

impl Env {
    /// The same API taken over by a new operator with `policy` (an upgrade of the
    /// operator, or a policy change rolled out to it).
    pub fn reconfigure(self, policy: Policy) -> Env {
        env_on(self.fake, policy)
    }

    pub fn create(&self, name: &str, spec: Value) -> Value {
        self.fake.insert(&apps(), safeapp(name, spec))
    }

    /// Reconciles the SafeApp as currently stored (as the watcher would deliver it),
    /// then the namespaces the app reconciler marked (as the namespace reconciler would).
    pub async fn reconcile(&self, name: &str) -> Result<Action, controller::Error> {
        let app: SafeApp =
            serde_json::from_value(self.fake.get(&apps(), name).expect("safeapp")).expect("typed");
        // Boxed, as the controller runs it: a debug build's test functions that await
        // many reconciles would otherwise hold each one's whole future in their frame.
        let result = Box::pin(controller::app::reconcile_app(&app, &self.ctx)).await;
        if result.is_ok() {
            self.sync_namespaces().await;
        }
        result
    }

    /// Runs the namespace reconciler over the namespaces waiting for it.
    pub async fn sync_namespaces(&self) {
        for ns in self.ctx.namespaces.take_dirty() {
            controller::namespace::reconcile_namespace(&ns, &self.ctx)
                .await
                .expect("namespace sync");
        }
    }

    pub fn app(&self, name: &str) -> Value {
        self.fake.get(&apps(), name).expect("safeapp")
    }

    pub fn condition(&self, name: &str, type_: &str) -> Value {
        self.app(name)["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["type"] == type_).cloned())
            .unwrap_or(Value::Null)
    }

    /// Writes to children and status since the last `clear_calls` (events excluded).
    pub fn child_writes(&self) -> Vec<String> {
        self.fake
            .writes()
            .into_iter()
            .filter(|c| !c.path.contains("/events"))
            .map(|c| format!("{} {}", c.method, c.path))
            .collect()
    }

    pub fn event_posts(&self) -> usize {
        self.fake
            .writes()
            .iter()
            .filter(|c| c.path.contains("/events"))
            .count()
    }
}

pub fn set_spec(env: &Env, name: &str, f: impl FnOnce(&mut Value)) {
    env.fake
        .edit(&apps(), name, "kubectl-client-side-apply", json!({}), |a| {
            f(&mut a["spec"])
        });
}
