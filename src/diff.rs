//! `safeapp diff`: what applying SafeApps would change in the cluster, before it is
//! done. For the SafeApp itself and every object the operator would produce from it,
//! a server-side dry-run apply (nothing is stored) is compared with the live object:
//! created, changed (a unified diff of the fields), unchanged, or pruned (the operator
//! would delete a child the new spec no longer asks for). It writes nothing: every
//! patch carries `dryRun=All`. Kubernetes authorizes a dry run with the verb it would
//! be, so the identity running it needs `get` and `patch`/`create` on these kinds
//! (`DIFF_PERMISSIONS`; `config/diff/role.yaml` grants exactly that).
//!
//! The children are rendered as the operator would render them now: with the live
//! SafeApp's uid in their ownerReferences and the current data hash of their
//! referenced ConfigMaps (and Secrets with `--watch-secrets`). The shared LimitRange and
//! ResourceQuota keep the ownerReferences they have (adding this app's when new).
//! What the preview cannot see: a staged operator upgrade (shown as a plain change)
//! and the replica count kept from an HPA being turned off.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::api::gateway::HTTPRoute;
use crate::api::monitoring::PodMonitor;
use crate::api::{FIELD_MANAGER, SafeApp};
use crate::controller::apply::{self, Ownership};
use crate::controller::{config, namespace};
use crate::policy::Policy;
use crate::render::{self, Object};
use crate::{manifest, validate};

/// Field manager of the SafeApp's own dry run (what `kubectl apply --server-side`
/// by a person or a GitOps tool would do).
pub const DIFF_MANAGER: &str = "safeapp-diff";

/// What `safeapp diff` calls: reads, and dry-run applies (authorized as patch, and as
/// create for an object that does not exist yet).
pub const DIFF_PERMISSIONS: &[(&str, &str, &[&str])] = &[
    ("safeapp.dev", "safeapps", DRY_RUN_VERBS),
    ("apps", "deployments", DRY_RUN_VERBS),
    ("apps", "statefulsets", DRY_RUN_VERBS),
    ("", "services", DRY_RUN_VERBS),
    ("policy", "poddisruptionbudgets", DRY_RUN_VERBS),
    ("autoscaling", "horizontalpodautoscalers", DRY_RUN_VERBS),
    ("networking.k8s.io", "networkpolicies", DRY_RUN_VERBS),
    ("networking.k8s.io", "ingresses", DRY_RUN_VERBS),
    ("gateway.networking.k8s.io", "httproutes", DRY_RUN_VERBS),
    ("monitoring.coreos.com", "podmonitors", DRY_RUN_VERBS),
    ("", "limitranges", DRY_RUN_VERBS),
    ("", "resourcequotas", DRY_RUN_VERBS),
    // The config hash, as the operator computes it.
    ("", "configmaps", &["get"]),
];
const DRY_RUN_VERBS: &[&str] = &["get", "create", "patch"];

/// What applying would do to one object.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Created,
    /// A unified diff of the object as YAML, live → after the apply.
    Changed(String),
    Unchanged,
    Pruned,
    /// Cannot be applied in this cluster (its API is not installed): nothing happens.
    Unavailable(String),
}

/// One object of the preview.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectDiff {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub change: Change,
    /// The object as it would be after the apply (empty when pruned), as YAML.
    pub after: String,
}

impl ObjectDiff {
    /// Whether applying changes anything about this object.
    pub fn changes(&self) -> bool {
        !matches!(self.change, Change::Unchanged | Change::Unavailable(_))
    }
}

impl fmt::Display for ObjectDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = format!("{} {}/{}", self.kind, self.namespace, self.name);
        match &self.change {
            Change::Unchanged => writeln!(f, "= {id}: unchanged"),
            Change::Pruned => writeln!(f, "- {id}: would be pruned (deleted)"),
            Change::Unavailable(why) => writeln!(f, "! {id}: not applied: {why}"),
            Change::Created => {
                writeln!(f, "+ {id}: would be created")?;
                write!(f, "{}", unified("", &self.after, &id))
            }
            Change::Changed(diff) => {
                writeln!(f, "~ {id}: would change")?;
                write!(f, "{diff}")
            }
        }
    }
}

/// Why the preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("invalid input:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    #[error("cannot read {kind} {namespace}/{name}: {source}")]
    Read {
        kind: String,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("the dry-run apply of {kind} {namespace}/{name} was refused: {source}")]
    DryRun {
        kind: String,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("cannot read the config the SafeApp references: {0}")]
    Config(crate::controller::Error),
}

/// The preview of every SafeApp in `text` (one multi-document manifest).
pub async fn diff(
    client: &Client,
    text: &str,
    policy: &Policy,
    watch_secrets: bool,
) -> Result<Vec<ObjectDiff>, DiffError> {
    diff_as(client, text, policy, watch_secrets, DIFF_MANAGER).await
}

/// [`diff`], dry-running the SafeApps' own apply as `field_manager` (the manager that
/// really applies them, e.g. `kubectl` or `argocd-controller`: then a field the new
/// manifest drops shows as removed, as it would be).
pub async fn diff_as(
    client: &Client,
    text: &str,
    policy: &Policy,
    watch_secrets: bool,
    field_manager: &str,
) -> Result<Vec<ObjectDiff>, DiffError> {
    let apps = manifest::parse(text).map_err(DiffError::Invalid)?;
    if apps.is_empty() {
        return Err(DiffError::Invalid(vec![
            "no SafeApp found in the input".into(),
        ]));
    }
    // Every problem of every document first: no API call for an invalid input.
    let mut valid = Vec::new();
    let mut problems = Vec::new();
    for mut app in apps {
        if app.metadata.namespace.is_none() {
            app.metadata.namespace = Some(client.default_namespace().to_string());
        }
        match validate::validate(&app, policy) {
            Ok(v) => valid.push((app, v)),
            Err(errs) => problems.extend(errs.iter().map(|e| {
                format!(
                    "{}/{}: {e}",
                    app.namespace().unwrap_or_default(),
                    app.name_any()
                )
            })),
        }
    }
    if !problems.is_empty() {
        return Err(DiffError::Invalid(problems));
    }
    let mut out = Vec::new();
    for (app, validated) in valid {
        out.extend(diff_app(client, app, validated, policy, watch_secrets, field_manager).await?);
    }
    Ok(out)
}

async fn diff_app(
    client: &Client,
    app: SafeApp,
    mut validated: validate::ValidatedApp,
    policy: &Policy,
    watch_secrets: bool,
    field_manager: &str,
) -> Result<Vec<ObjectDiff>, DiffError> {
    let ns = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let live_app = get(client, &ApiResource::erase::<SafeApp>(&()), &ns, &name).await?;
    // The SafeApp itself, as its author's apply would store it.
    let app_json = serde_json::to_value(&app).unwrap_or_default();
    let mut out = vec![
        compare(
            client,
            &ApiResource::erase::<SafeApp>(&()),
            &ns,
            &name,
            app_json,
            live_app.clone(),
            field_manager,
        )
        .await?,
    ];
    let uid = live_app
        .as_ref()
        .and_then(|l| l["metadata"]["uid"].as_str().map(String::from));
    // Children are owned by the live SafeApp (none yet: no ownerReference).
    validated.pod.uid = uid.clone();
    let (
        mut workload,
        render::Children {
            headless_service,
            service,
            pdb,
            hpa,
            network_policy,
            http_route,
            ingress,
            pod_monitor,
        },
    ) = render::render(&validated, policy).split();
    let state = config::state(
        client,
        &config::ConfigIndex::default(),
        watch_secrets,
        &ns,
        &name,
        &validated.config_refs,
    )
    .await
    .map_err(DiffError::Config)?;
    if let Some(hash) = &state.hash {
        workload.set_config_hash(hash);
    }
    let workload_resource = match &workload {
        render::Workload::Deployment(_) => ApiResource::erase::<Deployment>(&()),
        render::Workload::StatefulSet(_) => ApiResource::erase::<StatefulSet>(&()),
    };
    let mut children: Vec<(ApiResource, String, Option<Object>)> = vec![
        (
            workload_resource,
            name.clone(),
            Some(workload.into_object()),
        ),
        (
            ApiResource::erase::<Service>(&()),
            name.clone(),
            service.map(Object::Service),
        ),
        (
            ApiResource::erase::<PodDisruptionBudget>(&()),
            name.clone(),
            Some(Object::PodDisruptionBudget(pdb)),
        ),
        (
            ApiResource::erase::<HorizontalPodAutoscaler>(&()),
            name.clone(),
            hpa.map(Object::HorizontalPodAutoscaler),
        ),
        (
            ApiResource::erase::<NetworkPolicy>(&()),
            name.clone(),
            network_policy.map(Object::NetworkPolicy),
        ),
        (
            ApiResource::erase::<HTTPRoute>(&()),
            name.clone(),
            http_route.map(Object::HTTPRoute),
        ),
        (
            ApiResource::erase::<Ingress>(&()),
            name.clone(),
            ingress.map(Object::Ingress),
        ),
        (
            ApiResource::erase::<PodMonitor>(&()),
            name.clone(),
            pod_monitor.map(Object::PodMonitor),
        ),
    ];
    if let Some(headless) = headless_service {
        children.insert(
            1,
            (
                ApiResource::erase::<Service>(&()),
                render::statefulset::headless_name(&name),
                Some(Object::Service(headless)),
            ),
        );
    }
    for (resource, name, object) in children {
        let live = get_optional_kind(client, &resource, &ns, &name).await?;
        match object {
            Some(object) => {
                let result = compare(
                    client,
                    &resource,
                    &ns,
                    &name,
                    object.to_json(),
                    live,
                    FIELD_MANAGER,
                )
                .await;
                match result {
                    // No HTTPRoute CRD: the operator would report GatewayAPIMissing.
                    Err(DiffError::DryRun {
                        source: kube::Error::Api(s),
                        ..
                    }) if s.code == 404 && optional_crd(&resource.kind).is_some() => {
                        let what = optional_crd(&resource.kind).unwrap_or_default();
                        out.push(ObjectDiff {
                            kind: resource.kind.clone(),
                            namespace: ns.clone(),
                            name: name.clone(),
                            change: Change::Unavailable(format!(
                                "the {} CRD ({what}) is not installed",
                                resource.kind
                            )),
                            after: String::new(),
                        });
                    }
                    other => out.push(other?),
                }
            }
            None => {
                let owned = live
                    .as_ref()
                    .zip(uid.as_deref())
                    .is_some_and(|(l, uid)| apply::raw_owned(l, Ownership::Controller { uid }));
                if owned {
                    out.push(ObjectDiff {
                        kind: resource.kind.clone(),
                        namespace: ns.clone(),
                        name: name.clone(),
                        change: Change::Pruned,
                        after: String::new(),
                    });
                }
            }
        }
    }
    // The namespace's shared objects keep their owners (and gain this app).
    let (limit_range, quota) = render::namespace_objects(&ns, policy);
    let shared = [
        (
            ApiResource::erase::<LimitRange>(&()),
            Some(Object::LimitRange(limit_range)),
        ),
        (
            ApiResource::erase::<ResourceQuota>(&()),
            quota.map(Object::ResourceQuota),
        ),
    ];
    for (resource, object) in shared {
        let Some(object) = object else { continue };
        let mut desired = object.to_json();
        let obj_name = desired["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let live = get(client, &resource, &ns, &obj_name).await?;
        let members: Vec<namespace::Member> = uid
            .iter()
            .map(|u| (crate::api::WorkloadKind::SafeApp, name.clone(), u.clone()))
            .collect();
        let owners = namespace::shared_owners(live.as_ref(), &members);
        desired["metadata"]["ownerReferences"] =
            serde_json::to_value(&owners).unwrap_or(Value::Null);
        out.push(
            compare(
                client,
                &resource,
                &ns,
                &obj_name,
                desired,
                live,
                FIELD_MANAGER,
            )
            .await?,
        );
    }
    Ok(out)
}

async fn get(
    client: &Client,
    resource: &ApiResource,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, DiffError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    match api.get_opt(name).await {
        Ok(found) => Ok(found.map(|o| serde_json::to_value(o).unwrap_or_default())),
        Err(source) => Err(DiffError::Read {
            kind: resource.kind.clone(),
            namespace: ns.into(),
            name: name.into(),
            source,
        }),
    }
}

/// [`get`], where a kind whose CRD is not installed (HTTPRoute) reads as absent.
async fn get_optional_kind(
    client: &Client,
    resource: &ApiResource,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, DiffError> {
    match get(client, resource, ns, name).await {
        Err(DiffError::Read {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 404 => Ok(None),
        other => other,
    }
}

async fn compare(
    client: &Client,
    resource: &ApiResource,
    ns: &str,
    name: &str,
    desired: Value,
    live: Option<Value>,
    manager: &str,
) -> Result<ObjectDiff, DiffError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let params = PatchParams::apply(manager).force().dry_run();
    let after = api
        .patch(name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|source| DiffError::DryRun {
            kind: resource.kind.clone(),
            namespace: ns.into(),
            name: name.into(),
            source,
        })?;
    let after = comparable(serde_json::to_value(after).unwrap_or_default());
    let after_yaml = to_yaml(&after);
    let id = format!("{} {ns}/{name}", resource.kind);
    let change = match live {
        None => Change::Created,
        Some(live) => {
            let before_yaml = to_yaml(&comparable(live));
            if before_yaml == after_yaml {
                Change::Unchanged
            } else {
                Change::Changed(unified(&before_yaml, &after_yaml, &id))
            }
        }
    };
    Ok(ObjectDiff {
        kind: resource.kind.clone(),
        namespace: ns.into(),
        name: name.into(),
        change,
        after: after_yaml,
    })
}

/// The object without what every write changes (resourceVersion, managedFields,
/// generation, timestamps) and without status (no apply changes it).
fn comparable(mut v: Value) -> Value {
    if let Some(meta) = v["metadata"].as_object_mut() {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            meta.remove(key);
        }
    }
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    v
}

fn to_yaml(v: &Value) -> String {
    // BTreeMap keys: a stable order on both sides.
    let sorted: BTreeMap<String, Value> = v
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    serde_yaml_ng::to_string(&sorted).unwrap_or_default()
}

fn unified(before: &str, after: &str, id: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{id}"), &format!("applied/{id}"))
        .to_string()
}

/// Whether `diffs` hold any change (the exit code of `safeapp diff`).
pub fn any_change(diffs: &[ObjectDiff]) -> bool {
    diffs.iter().any(ObjectDiff::changes)
}

/// Kinds whose CRD may not be installed (the operator reports that in a condition and
/// applies the rest): what installs them.
fn optional_crd(kind: &str) -> Option<&'static str> {
    match kind {
        "HTTPRoute" => Some("Gateway API"),
        "PodMonitor" => Some("Prometheus Operator"),
        _ => None,
    }
}
