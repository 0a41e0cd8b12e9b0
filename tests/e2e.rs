//! End-to-end tests against a real cluster: `make e2e` (`cargo test --features e2e --test
//! e2e -- --test-threads=1`) with `KUBECONFIG` pointing at it (kind, minikube, any
//! cluster where you may create CRDs and namespaces). Each test installs the CRD
//! (server-side), creates a temporary namespace, runs the controller in-process for that
//! namespace, and deletes the namespace at the end. Without `KUBECONFIG` every test says
//! it was skipped.
//!
//! The controller does not run as the kubeconfig's (admin) user: it impersonates a user
//! bound only to the rules of the project's own ClusterRole (`config/rbac/role.yaml`),
//! so a verb missing there fails here as it would in a real install.
#![cfg(feature = "e2e")]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use safeapp::api::{FIELD_MANAGER, SafeApp};
use safeapp::controller::{self, RunConfig};
use safeapp::metrics::Metrics;
use safeapp::policy::Policy;
use serde_json::{Value, json};
use tokio::sync::watch;

/// A temporary namespace with the controller running in it.
struct Cluster {
    client: Client,
    ns: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Connects and prepares, or prints why the test is skipped.
async fn setup(test: &str) -> Option<Cluster> {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!("SKIPPED e2e::{test}: KUBECONFIG is not set (see README, End-to-end tests)");
        return None;
    }
    let client = Client::try_default()
        .await
        .expect("connect with KUBECONFIG");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in safeapp::crd::crds() {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("safeapp-e2e").force(),
            &Patch::Apply(crd),
        )
        .await
        .expect("install the CRD");
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established in 30 s")
        .expect("watch the CRD");
    }

    let ns = format!(
        "safeapp-e2e-{}-{}",
        test.replace('_', "-"),
        std::process::id() % 100_000
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": ns, "labels": {"safeapp-e2e": "true"}}}),
            )
            .expect("ns"),
        )
        .await
        .expect("create the test namespace");

    let operator = operator_client(&client).await;
    let (stop, stop_rx) = watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
        .boxed()
        .shared()
    };
    let config = RunConfig {
        policy: Policy::default(),
        resync: Duration::from_secs(3),
        concurrency: 4,
        namespace: Some(ns.clone()),
        selector: None,
        watch_secrets: false,
    };
    let task = tokio::spawn(controller::run(
        operator,
        config,
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(false)),
        stopped,
        futures::future::pending(),
    ));
    Some(Cluster {
        client,
        ns,
        stop,
        task,
    })
}

/// The user the controller runs as in these tests.
const OPERATOR_USER: &str = "safeapp-e2e-operator";

/// Installs the rules of `config/rbac/role.yaml` as a ClusterRole bound to
/// [`OPERATOR_USER`] (as the admin in KUBECONFIG), and returns a client that impersonates
/// that user: the controller gets exactly the permissions a real install grants.
async fn operator_client(admin: &Client) -> Client {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/rbac/role.yaml"
    ))
    .expect("config/rbac/role.yaml");
    let mut role: ClusterRole = serde_yaml_ng::from_str(&text).expect("a ClusterRole");
    role.metadata = serde_json::from_value(json!({"name": "safeapp-operator-e2e"})).expect("meta");
    let params = PatchParams::apply("safeapp-e2e").force();
    Api::<ClusterRole>::all(admin.clone())
        .patch("safeapp-operator-e2e", &params, &Patch::Apply(&role))
        .await
        .expect("install the e2e ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "safeapp-operator-e2e"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "safeapp-operator-e2e"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}],
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .patch("safeapp-operator-e2e", &params, &Patch::Apply(&binding))
        .await
        .expect("bind the e2e ClusterRole");
    let mut config = kube::Config::infer().await.expect("kubeconfig");
    config.auth_info.impersonate = Some(OPERATOR_USER.into());
    Client::try_from(config).expect("impersonating client")
}

impl Cluster {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create_app(&self, name: &str, spec: Value) -> Result<SafeApp, kube::Error> {
        let app: SafeApp = serde_json::from_value(json!({
            "apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
            "metadata": {"name": name, "namespace": self.ns}, "spec": spec,
        }))
        .expect("SafeApp");
        self.api::<SafeApp>()
            .create(&PostParams::default(), &app)
            .await
    }

    /// Waits (30 s at most) for the Deployment the operator makes.
    async fn deployment(&self, name: &str) -> Deployment {
        within(Duration::from_secs(30), "the Deployment", || async {
            self.api::<Deployment>().get_opt(name).await.ok().flatten()
        })
        .await
    }

    async fn teardown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
    }
}

fn web() -> Value {
    json!({"image": "registry.k8s.io/e2e-test-images/agnhost:2.53", "args": ["netexec", "--http-port=8080"],
           "ports": [{"name": "http", "port": 8080}], "healthCheck": {"path": "/healthz"}, "replicas": 1})
}

/// Polls `check` every 200 ms until it returns Some, or panics after `limit`.
async fn within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Every child is created with the labels and a controller ownerReference.
#[tokio::test]
async fn children_created_with_labels_and_owners() {
    let Some(c) = setup("children").await else {
        return;
    };
    let app = c.create_app("web", web()).await.expect("create");
    let uid = app.uid().expect("uid");
    let deploy = c.deployment("web").await;
    let svc: Service = within(Duration::from_secs(10), "the Service", || async {
        c.api::<Service>().get_opt("web").await.ok().flatten()
    })
    .await;
    for meta in [&deploy.metadata, &svc.metadata] {
        let labels = meta.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("app.kubernetes.io/name").map(String::as_str),
            Some("web")
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("safeapp-operator")
        );
        let owner = &meta.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(owner.uid, uid);
        assert_eq!(owner.controller, Some(true));
    }
    c.teardown().await;
}

// An edited Deployment field is restored within 5 s, with a DriftCorrected Event.
#[tokio::test]
async fn drift_restored_within_five_seconds() {
    let Some(c) = setup("drift").await else {
        return;
    };
    c.create_app("web", web()).await.expect("create");
    let deployments = c.api::<Deployment>();
    c.deployment("web").await;
    // Let the first reconciles settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    deployments
        .patch(
            "web",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 1}}}})),
        )
        .await
        .expect("edit");
    within(
        Duration::from_secs(5),
        "maxUnavailable restored to 0",
        || async {
            let d = deployments.get("web").await.ok()?;
            let mu = d.spec?.strategy?.rolling_update?.max_unavailable?;
            (mu == k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)).then_some(())
        },
    )
    .await;
    let events: Api<Event> = c.api();
    let event = within(
        Duration::from_secs(10),
        "the DriftCorrected Event",
        || async {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("DriftCorrected"))
        },
    )
    .await;
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("maxUnavailable") && note.contains("kubectl-edit"),
        "{note}"
    );
    c.teardown().await;
}

// A deleted Service is recreated.
#[tokio::test]
async fn deleted_service_recreated() {
    let Some(c) = setup("recreate").await else {
        return;
    };
    c.create_app("web", web()).await.expect("create");
    let services = c.api::<Service>();
    let first: Service = within(Duration::from_secs(30), "the Service", || async {
        services.get_opt("web").await.ok().flatten()
    })
    .await;
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    within(Duration::from_secs(10), "a new Service", || async {
        let s = services.get_opt("web").await.ok().flatten()?;
        (s.uid() != first.uid()).then_some(())
    })
    .await;
    c.teardown().await;
}

// Autoscaling on creates the HPA and hands replicas over; off deletes it.
#[tokio::test]
async fn autoscaling_toggled() {
    let Some(c) = setup("autoscaling").await else {
        return;
    };
    c.create_app("web", web()).await.expect("create");
    let apps = c.api::<SafeApp>();
    let hpas = c.api::<HorizontalPodAutoscaler>();
    c.deployment("web").await;
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": null, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}}})),
    )
    .await
    .expect("autoscaling on");
    within(Duration::from_secs(15), "the HPA", || async {
        hpas.get_opt("web").await.ok().flatten()
    })
    .await;
    let d = c.api::<Deployment>().get("web").await.expect("deployment");
    assert!(
        d.spec.and_then(|s| s.replicas).is_some_and(|r| r >= 1),
        "replicas kept while the HPA takes over"
    );
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"autoscaling": null, "replicas": 2}})),
    )
    .await
    .expect("autoscaling off");
    within(Duration::from_secs(15), "the HPA gone", || async {
        hpas.get_opt("web")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    c.teardown().await;
}

// The API server's CEL rules refuse an invalid SafeApp at create time; one that passes
// CEL but fails the operator's validation gets InvalidSpec.
#[tokio::test]
async fn invalid_specs() {
    let Some(c) = setup("invalid").await else {
        return;
    };
    let mut latest = web();
    latest["image"] = json!("registry.k8s.io/e2e-test-images/agnhost:latest");
    let err = c
        .create_app("latest", latest)
        .await
        .expect_err("CEL refuses tag latest");
    assert!(err.to_string().contains("latest"), "{err}");
    let mut zero = web();
    zero["rollout"] = json!({"maxSurge": 0});
    assert!(
        c.create_app("zero", zero).await.is_err(),
        "CEL refuses maxSurge 0 with maxUnavailable 0"
    );

    let mut host_path = web();
    host_path["volumes"] = json!([{"name": "host", "hostPath": {"path": "/etc"}}]);
    c.create_app("hostpath", host_path)
        .await
        .expect("passes CEL");
    let reason = c.refused("hostpath").await;
    assert!(reason.contains("spec.volumes[0].hostPath"), "{reason}");
    c.teardown().await;
}

// On a real API server, the reported escape passes the CRD and is refused by the
// guardrails with field paths; no Deployment is created.
#[tokio::test]
async fn guardrail_escape_is_refused() {
    let Some(c) = setup("guardrails").await else {
        return;
    };
    let mut escape = web();
    escape["securityProfile"] = json!("none");
    escape["priorityClassName"] = json!("system-node-critical");
    escape["serviceAccountName"] = json!("some-privileged-sa");
    escape["service"] = json!({"type": "LoadBalancer"});
    escape["initContainers"] = json!([{"name": "x", "image": "busybox:1.36",
                                       "securityContext": {"privileged": true}}]);
    escape["volumes"] = json!([{"name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}]);
    escape["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/escape": "unconfined"});
    c.create_app("escape", escape)
        .await
        .expect("passes the CRD");
    let message = c.refused("escape").await;
    for path in [
        "spec.securityProfile",
        "spec.priorityClassName",
        "spec.serviceAccountName",
        "spec.service.type",
    ] {
        assert!(message.contains(path), "{path} missing in {message}");
    }
    c.teardown().await;
}

// On a real API server: a ConfigMap data edit reaches the pod template through the
// metadata-only watch (with the shipped RBAC), and a label edit does not.
#[tokio::test]
async fn config_map_edit_rolls() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let Some(c) = setup("config-rollout").await else {
        return;
    };
    let cms = c.api::<ConfigMap>();
    let params = PatchParams::apply("e2e-user").force();
    let cm = |data: &str, labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app-config", "labels": labels}, "data": {"LEVEL": data}})
    };
    cms.patch("app-config", &params, &Patch::Apply(cm("info", json!({}))))
        .await
        .expect("ConfigMap");
    let mut spec = web();
    spec["envFrom"] = json!([{"configMapRef": {"name": "app-config"}}]);
    c.create_app("web", spec).await.expect("create");
    let hash = || async {
        let d = c.api::<Deployment>().get_opt("web").await.ok().flatten()?;
        d.spec?
            .template
            .metadata?
            .annotations?
            .get("safeapp.dev/config-hash")
            .cloned()
    };
    let first = within(Duration::from_secs(30), "a config hash", hash).await;
    cms.patch(
        "app-config",
        &params,
        &Patch::Apply(cm("info", json!({"team": "a"}))),
    )
    .await
    .expect("label edit");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hash().await,
        Some(first.clone()),
        "a label edit rolls nothing"
    );
    cms.patch(
        "app-config",
        &params,
        &Patch::Apply(cm("debug", json!({"team": "a"}))),
    )
    .await
    .expect("data edit");
    within(Duration::from_secs(10), "a new config hash", || async {
        hash().await.filter(|h| *h != first)
    })
    .await;
    c.teardown().await;
}

// On a real API server: the NetworkPolicy and the Ingress are created; an app exposed
// through a Gateway gets its HTTPRoute, or reports GatewayAPIMissing when the
// cluster has no Gateway API, and its other children are there either way.
#[tokio::test]
async fn traffic_children() {
    use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
    let Some(c) = setup("traffic").await else {
        return;
    };
    let mut ingress = web();
    ingress["expose"] = json!({"hosts": ["web.example.com"], "ingressClassName": "nginx"});
    ingress["accessPolicy"] = json!({"inbound": [{"app": "routed"}]});
    c.create_app("web", ingress).await.expect("create");
    within(
        Duration::from_secs(30),
        "NetworkPolicy and Ingress",
        || async {
            let np = c
                .api::<NetworkPolicy>()
                .get_opt("web")
                .await
                .ok()
                .flatten()?;
            c.api::<Ingress>().get_opt("web").await.ok().flatten()?;
            Some(np)
        },
    )
    .await;
    let mut routed = web();
    routed["expose"] = json!({"hosts": ["routed.example.com"], "gateway": {"name": "public"}});
    c.create_app("routed", routed).await.expect("create");
    c.deployment("routed").await;
    let apps = c.api::<SafeApp>();
    let reason = within(Duration::from_secs(30), "Exposed", || async {
        let app = apps.get("routed").await.ok()?;
        let exposed = app
            .status?
            .conditions?
            .into_iter()
            .find(|x| x.type_ == "Exposed")?;
        Some(exposed.reason)
    })
    .await;
    assert!(
        ["GatewayAPIMissing", "Pending", "Accepted", "NotAccepted"].contains(&reason.as_str()),
        "{reason}"
    );
    c.teardown().await;
}

impl Cluster {
    /// Waits for `name` to report `InvalidSpec`, checks that it has no Deployment, and
    /// returns the message.
    async fn refused(&self, name: &str) -> String {
        let apps = self.api::<SafeApp>();
        let message = within(Duration::from_secs(15), "InvalidSpec", || async {
            let app = apps.get(name).await.ok()?;
            let ready = app
                .status?
                .conditions?
                .into_iter()
                .find(|x| x.type_ == "Ready")?;
            (ready.reason == "InvalidSpec").then_some(ready.message)
        })
        .await;
        let deployment = self.api::<Deployment>().get_opt(name).await.expect("get");
        assert!(deployment.is_none(), "{name} has a Deployment");
        message
    }

    /// Lets the rollout and status settle, then checks that resyncs (every 3 s here) with
    /// nothing changed write nothing: resourceVersions and the operator's managedFields
    /// times stay put, and no DriftCorrected Event appears.
    async fn assert_quiet(&self, name: &str) {
        self.deployment(name).await;
        tokio::time::sleep(Duration::from_secs(20)).await;
        let ours = |managed: Option<
            Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>,
        >| {
            managed
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
                .map(|m| m.time)
                .collect::<Vec<_>>()
        };
        let deployments = self.api::<Deployment>();
        let svc_before = self.api::<Service>().get(name).await.expect("svc");
        let deploy_before = ours(
            deployments
                .get(name)
                .await
                .expect("d")
                .metadata
                .managed_fields,
        );
        let app_before = self.api::<SafeApp>().get(name).await.expect("app");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let svc_after = self.api::<Service>().get(name).await.expect("svc");
        let deploy_after = ours(
            deployments
                .get(name)
                .await
                .expect("d")
                .metadata
                .managed_fields,
        );
        let app_after = self.api::<SafeApp>().get(name).await.expect("app");
        assert_eq!(
            svc_before.resource_version(),
            svc_after.resource_version(),
            "the Service was rewritten"
        );
        assert_eq!(
            deploy_before, deploy_after,
            "the operator re-applied the Deployment"
        );
        assert_eq!(
            app_before.resource_version(),
            app_after.resource_version(),
            "the SafeApp's status was rewritten"
        );
        let drift = self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("DriftCorrected"))
            .count();
        assert_eq!(drift, 0, "DriftCorrected without anyone changing anything");
    }
}

// Resyncs with nothing changed write nothing.
#[tokio::test]
async fn resync_makes_no_writes() {
    let Some(c) = setup("resync").await else {
        return;
    };
    c.create_app("web", web()).await.expect("create");
    c.assert_quiet("web").await;
    c.teardown().await;
}

// Zero values the API server does not store (omitempty) are not drift: no re-apply.
#[tokio::test]
async fn zero_values_make_no_writes() {
    let Some(c) = setup("zero-values").await else {
        return;
    };
    let mut spec = web();
    spec["env"] = json!([{"name": "EMPTY", "value": ""}]);
    spec["command"] = json!([]);
    spec["imagePullSecrets"] = json!([]);
    spec["rollout"] = json!({"minReadySeconds": 0});
    spec["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
    spec["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch", "readOnly": false}]);
    spec["resources"] = json!({"requests": {"cpu": "0.1", "memory": "64Mi"}, "limits": {"cpu": "0.5", "memory": "128Mi"}});
    c.create_app("web", spec).await.expect("create");
    c.assert_quiet("web").await;
    c.teardown().await;
}

// `kubectl scale sapp/web --replicas=3` works through the scale subresource.
#[tokio::test]
async fn scale_subresource() {
    let Some(c) = setup("scale").await else {
        return;
    };
    c.create_app("web", web()).await.expect("create");
    let apps = c.api::<SafeApp>();
    apps.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .expect("scale");
    assert_eq!(apps.get("web").await.expect("get").spec.replicas, Some(3));
    within(
        Duration::from_secs(15),
        "3 replicas on the Deployment",
        || async {
            let d = c.api::<Deployment>().get("web").await.ok()?;
            (d.spec?.replicas == Some(3)).then_some(())
        },
    )
    .await;
    c.teardown().await;
}

fn safejob_value(ns: &str, name: &str, spec: Value) -> safeapp::api::SafeJob {
    serde_json::from_value(json!({
        "apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeJob",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))
    .expect("SafeJob")
}

fn short_job() -> Value {
    json!({"image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
           "command": ["sh", "-c", "echo done"], "activeDeadlineSeconds": 600})
}

// A scheduled SafeJob runs on a real cluster: its CronJob (every minute) starts a run
// whose pod is admitted with the restricted profile, the SafeJob's status shows the
// schedule time, and the one-off immutability rule is enforced by the API server.
#[tokio::test]
async fn safejob_runs_and_one_off_is_immutable() {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use safeapp::api::SafeJob;
    let Some(c) = setup("safejob_runs_and_one_off_is_immutable").await else {
        return;
    };
    let mut every_minute = short_job();
    every_minute["schedule"] = json!("* * * * *");
    every_minute["timeZone"] = json!("Etc/UTC");
    c.api::<SafeJob>()
        .create(
            &PostParams::default(),
            &safejob_value(&c.ns, "tick", every_minute),
        )
        .await
        .expect("create the scheduled SafeJob");
    let cron: CronJob = within(Duration::from_secs(30), "the CronJob", || async {
        c.api::<CronJob>().get_opt("tick").await.ok().flatten()
    })
    .await;
    assert_eq!(
        cron.spec.as_ref().unwrap().concurrency_policy.as_deref(),
        Some("Forbid")
    );
    within(
        Duration::from_secs(150),
        "a run in the SafeJob's status",
        || async {
            let job = c.api::<SafeJob>().get("tick").await.ok()?;
            job.status?.last_schedule_time.map(|_| ())
        },
    )
    .await;

    let one_off = short_job();
    c.api::<SafeJob>()
        .create(
            &PostParams::default(),
            &safejob_value(&c.ns, "migrate", one_off),
        )
        .await
        .expect("create the one-off SafeJob");
    within(Duration::from_secs(30), "the Job", || async {
        c.api::<Job>().get_opt("migrate").await.ok().flatten()
    })
    .await;
    // Immutable from the moment the status records the Job.
    within(Duration::from_secs(30), "status.jobName", || async {
        c.api::<SafeJob>()
            .get("migrate")
            .await
            .ok()?
            .status?
            .job_name
    })
    .await;
    let refused = c
        .api::<SafeJob>()
        .patch(
            "migrate",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"command": ["sh", "-c", "echo again"]}})),
        )
        .await
        .expect_err("a one-off SafeJob's spec is immutable");
    // The CEL rule's own message, as the CRD carries it (not a copy that can go stale).
    assert!(
        refused
            .to_string()
            .contains(safeapp::api::safejob::IMMUTABLE_MESSAGE),
        "{refused}"
    );
    within(
        Duration::from_secs(120),
        "the one-off run's outcome",
        || async {
            let job = c.api::<SafeJob>().get("migrate").await.ok()?;
            let ready = job
                .status?
                .conditions?
                .into_iter()
                .find(|x| x.type_ == "Ready")?;
            (ready.reason == "Succeeded").then_some(())
        },
    )
    .await;
    c.teardown().await;
}

// A stateful app gets its StatefulSet (claims, headless serviceName) and headless
// Service; once settled, resyncs write nothing to it: the real server's defaulting of a
// StatefulSet (claim templates' apiVersion, kind, volumeMode, status) is not drift.
#[tokio::test]
async fn stateful_app_children_and_no_writes_at_rest() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let Some(c) = setup("stateful").await else {
        return;
    };
    let mut spec = web();
    spec["stateful"] =
        json!({"volumeClaimTemplates": [{"name": "data", "size": "1Gi", "mountPath": "/data"}]});
    c.create_app("db", spec).await.expect("create");
    let sts: StatefulSet = within(Duration::from_secs(30), "the StatefulSet", || async {
        c.api::<StatefulSet>().get_opt("db").await.ok().flatten()
    })
    .await;
    let spec = sts.spec.expect("spec");
    assert_eq!(spec.service_name.as_deref(), Some("db-headless"));
    assert_eq!(spec.volume_claim_templates.map(|v| v.len()), Some(1));
    let headless: Service = within(Duration::from_secs(10), "the headless Service", || async {
        c.api::<Service>()
            .get_opt("db-headless")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(
        headless.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    let ours = |s: StatefulSet| {
        s.metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
            .map(|m| m.time)
            .collect::<Vec<_>>()
    };
    let before = ours(c.api::<StatefulSet>().get("db").await.expect("sts"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = ours(c.api::<StatefulSet>().get("db").await.expect("sts"));
    assert_eq!(
        before, after,
        "the operator re-applied the StatefulSet at rest"
    );
    c.teardown().await;
}

// An app with spec.metrics: where the Prometheus Operator is installed it gets its
// PodMonitor (Monitored=True); where it is not, Monitored=False with
// PrometheusOperatorMissing, and every other child all the same.
#[tokio::test]
async fn metrics_pod_monitor_or_its_missing_crd() {
    let Some(c) = setup("metrics").await else {
        return;
    };
    let mut spec = web();
    spec["metrics"] = json!({"port": "http", "path": "/metrics"});
    c.create_app("scraped", spec).await.expect("create");
    c.deployment("scraped").await;
    let apps = c.api::<SafeApp>();
    let monitored = within(
        Duration::from_secs(30),
        "the Monitored condition",
        || async {
            let app = apps.get("scraped").await.ok()?;
            app.status?
                .conditions?
                .into_iter()
                .find(|x| x.type_ == "Monitored")
        },
    )
    .await;
    let pod_monitors: Api<kube::core::DynamicObject> = Api::namespaced_with(
        c.client.clone(),
        &c.ns,
        &kube::core::ApiResource::erase::<safeapp::api::monitoring::PodMonitor>(&()),
    );
    match monitored.reason.as_str() {
        "PodMonitorApplied" => {
            assert_eq!(monitored.status, "True");
            assert!(
                pod_monitors
                    .get_opt("scraped")
                    .await
                    .expect("get")
                    .is_some()
            );
        }
        "PrometheusOperatorMissing" => assert_eq!(monitored.status, "False"),
        other => panic!("unexpected Monitored reason {other}: {monitored:?}"),
    }
    c.teardown().await;
}

// A canary on a real cluster, by replica ratio: a new env var runs as `<name>-canary`
// beside the stable Deployment, its one step passes once its pods are ready and the
// pause is over, and the stable Deployment is promoted; a canary whose container exits
// crash-loops and is aborted (Stalled, CanaryAborted) with the stable untouched.
#[tokio::test]
async fn canary_promoted_then_a_crashing_one_aborted() {
    let Some(c) = setup("canary").await else {
        return;
    };
    let mut spec = web();
    spec["rollout"] = json!({"canary": {"steps": [{"weight": 50, "pause": "10s"}]}});
    c.create_app("canary", spec).await.expect("create");
    let apps = c.api::<SafeApp>();
    let condition = |t: &'static str| {
        let apps = apps.clone();
        move || {
            let apps = apps.clone();
            async move {
                let app = apps.get("canary").await.ok()?;
                app.status?.conditions?.into_iter().find(|x| x.type_ == t)
            }
        }
    };
    within(Duration::from_secs(120), "Ready", || async {
        condition("Ready")().await.filter(|r| r.status == "True")
    })
    .await;
    let patch = |env: Value| {
        let apps = apps.clone();
        async move {
            apps.patch(
                "canary",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": env})),
            )
            .await
            .expect("patch")
        }
    };
    patch(json!({"env": [{"name": "RELEASE", "value": "2"}]})).await;
    let canary = within(Duration::from_secs(30), "the canary Deployment", || async {
        c.api::<Deployment>()
            .get_opt("canary-canary")
            .await
            .ok()
            .flatten()
    })
    .await;
    let labels = canary
        .spec
        .expect("spec")
        .template
        .metadata
        .expect("meta")
        .labels
        .expect("labels");
    assert_eq!(labels.get("track").map(String::as_str), Some("canary"));
    let promoted = within(Duration::from_secs(180), "the promotion", || async {
        let app = apps.get("canary").await.ok()?;
        let st = app.status?.canary?;
        (st.phase == safeapp::api::v1alpha1::CanaryPhase::Succeeded).then_some(st)
    })
    .await;
    assert_eq!(promoted.weight, 0);
    let stable = c.api::<Deployment>().get("canary").await.expect("stable");
    let env = stable
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert!(env.iter().any(|e| e.name == "RELEASE"), "{env:?}");
    let before = c
        .api::<Deployment>()
        .get("canary")
        .await
        .expect("stable")
        .spec;
    patch(json!({"args": ["no-such-subcommand"]})).await;
    let stalled = within(Duration::from_secs(180), "the abort", || async {
        condition("Stalled")().await.filter(|s| s.status == "True")
    })
    .await;
    assert_eq!(stalled.reason, "CanaryAborted", "{stalled:?}");
    let after = c
        .api::<Deployment>()
        .get("canary")
        .await
        .expect("stable")
        .spec;
    assert_eq!(before, after, "the stable Deployment was touched");
    c.teardown().await;
}
