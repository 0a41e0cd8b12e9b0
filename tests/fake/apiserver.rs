//! The real API server's rules that the in-memory API reproduces, in one place, so every
//! test that uses the fake gets them (SAFEAPP.md §7 and §7b):
//!
//! - **RBAC** ([`Rbac`]): a request is allowed only when a rule of the given ClusterRole /
//!   Role grants its verb. A server-side apply (PATCH) of an object that does not exist
//!   yet is a create as well: it needs `create` *and* `patch`. A refusal is the API
//!   server's 403 with its message.
//! - **Storage** ([`store`]): built-in kinds are Go structs on the server: `omitempty`
//!   zero values are dropped (`env[].value: ""`, `args: []`, `readOnly: false`,
//!   `minReadySeconds: 0`; pointer fields keep their zero), fields the server defaults are
//!   filled in (`protocol: TCP`, `terminationMessagePath`, `dnsPolicy`, `schedulerName`,
//!   probe thresholds, Service `sessionAffinity`, `ipFamilies`...), and quantities are
//!   canonicalised (`0.5` → `500m`). Custom resources (SafeApp) are stored as sent.
//! - **Registry strategies and validation** ([`prepare_for_create`],
//!   [`prepare_for_update`], [`validate`]): `batch/v1` Jobs and CronJobs get their
//!   generated selector on create, keep their status on a spec write (and their spec on a
//!   status write), and a refused write is the server's 422 `Invalid` (an immutable Job
//!   template, a status transition the job controller would not make...); see
//!   `batch.rs`.

use serde_json::{Map, Value, json};

/// One RBAC rule: API groups, resources (`deployments`, `safeapps/status`), verbs.
#[derive(Clone, Debug)]
pub struct Rule {
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

/// What a request asks for, in RBAC terms.
#[derive(Clone, Debug)]
pub struct Attributes {
    pub verb: &'static str,
    pub group: String,
    /// `deployments`, or `safeapps/status` for a subresource.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// The rules a user is bound to. `None` in [`crate::fake::FakeApi`] means no RBAC
/// (cluster-admin).
#[derive(Clone, Debug, Default)]
pub struct Rbac {
    pub user: String,
    pub rules: Vec<Rule>,
}

impl Rbac {
    /// The rules of every ClusterRole and Role in the given YAML files (other documents
    /// are ignored), for `user`.
    pub fn from_files(user: &str, paths: &[&str]) -> Self {
        let mut rules = Vec::new();
        for path in paths {
            let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let v: Value = serde::Deserialize::deserialize(doc).expect("YAML");
                if !matches!(v["kind"].as_str(), Some("ClusterRole" | "Role")) {
                    continue;
                }
                for r in v["rules"].as_array().into_iter().flatten() {
                    let list = |k: &str| -> Vec<String> {
                        r[k].as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    };
                    rules.push(Rule {
                        groups: list("apiGroups"),
                        resources: list("resources"),
                        verbs: list("verbs"),
                    });
                }
            }
        }
        Self {
            user: user.into(),
            rules,
        }
    }

    /// The operator's own permissions as shipped: `config/rbac`.
    pub fn operator() -> Self {
        Self::from_files(
            "system:serviceaccount:safeapp-system:safeapp-operator",
            &[
                "config/rbac/role.yaml",
                "config/rbac/leader_election_role.yaml",
            ],
        )
    }

    /// The operator with the `config/components/secret-rollout` component installed.
    pub fn operator_with_secrets() -> Self {
        let mut rbac = Self::operator();
        rbac.rules.extend(
            Self::from_files(&rbac.user, &["config/components/secret-rollout/role.yaml"]).rules,
        );
        rbac
    }

    fn allows(&self, verb: &str, group: &str, resource: &str) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        self.rules
            .iter()
            .any(|r| any(&r.groups, group) && any(&r.resources, resource) && any(&r.verbs, verb))
    }

    /// The API server's 403 for a refused request, or None when allowed.
    pub fn check(&self, a: &Attributes) -> Option<String> {
        if self.allows(a.verb, &a.group, &a.resource) {
            return None;
        }
        let (plural, sub) = match a.resource.split_once('/') {
            Some((p, s)) => (p, Some(s)),
            None => (a.resource.as_str(), None),
        };
        // The resource qualified by its group, as the server names it: `jobs.batch`.
        let qualified = if a.group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{}", a.group)
        };
        let what = match &a.name {
            Some(n) => format!("{qualified} \"{n}\" is forbidden"),
            None => format!("{qualified} is forbidden"),
        };
        let resource = match sub {
            Some(s) => format!("resource \"{plural}/{s}\""),
            None => format!("resource \"{plural}\""),
        };
        let scope = match &a.namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".into(),
        };
        Some(format!(
            "{what}: User \"{}\" cannot {} {resource} in API group \"{}\"{scope}",
            self.user, a.verb, a.group
        ))
    }
}

/// The registry's create-time preparation of an object of `plural` that already has its
/// name and uid (see [`super::batch::prepare_for_create`]: a Job's generated selector).
pub fn prepare_for_create(plural: &str, obj: &mut Value) {
    super::batch::prepare_for_create(plural, obj);
}

/// The registry's update-time preparation of `new` (the stored object: `old`; `sub`: the
/// subresource written): what the write may not change is put back.
pub fn prepare_for_update(plural: &str, sub: Option<&str>, new: &mut Value, old: &Value) {
    super::batch::prepare_for_update(plural, sub, new, old);
    // A StatefulSet keeps its status on a spec write (the registry's strategy).
    if plural == "statefulsets" && sub.is_none() {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
}

/// The server's validation of a write (after [`store`]): the 422 Status when refused.
pub fn validate(
    plural: &str,
    sub: Option<&str>,
    obj: &Value,
    old: Option<&Value>,
) -> Option<Value> {
    if let ("statefulsets", None, Some(old)) = (plural, sub, old) {
        return super::apps::validate_update(obj, old);
    }
    super::batch::validate(plural, sub, obj, old)
}

/// Fields behind a feature gate that is off are dropped on write, silently, as the API
/// server does (`dropDisabledFields`): a StatefulSet's `rollingUpdate.maxUnavailable`
/// without `MaxUnavailableStatefulSet`.
pub fn drop_gated_fields(
    plural: &str,
    obj: &mut Value,
    features: &std::collections::BTreeSet<String>,
) {
    if plural == "statefulsets"
        && !features.contains("MaxUnavailableStatefulSet")
        && let Some(ru) = obj["spec"]["updateStrategy"]["rollingUpdate"].as_object_mut()
    {
        ru.remove("maxUnavailable");
    }
}

/// Transforms an object of the built-in kind `plural` as the API server would between
/// the write and the next read.
pub fn store(plural: &str, obj: &mut Value) {
    if plural == "httproutes" {
        default_route(obj);
        return;
    }
    if !BUILT_IN.contains(&plural) {
        return;
    }
    default_fields(plural, obj);
    canonical_quantities(obj, None);
    drop_omitempty(obj);
}

const BUILT_IN: &[&str] = &[
    "deployments",
    "statefulsets",
    "services",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
    "limitranges",
    "resourcequotas",
    "networkpolicies",
    "jobs",
    "cronjobs",
];

/// Map-typed fields (Go `map[string]...`): their entries are values, never dropped. The
/// quantity maps (`requests`, `limits`, `hard`...) are too.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "nodeSelector",
    "matchLabels",
    "data",
];

fn is_map_field(key: &str, v: &Value) -> bool {
    MAP_FIELDS.contains(&key)
        || safeapp::apiserver::QUANTITY_MAPS.contains(&key)
        // Service spec.selector is a map; a LabelSelector is a struct.
        || (key == "selector" && v.get("matchLabels").is_none() && v.get("matchExpressions").is_none())
}

/// Go's `omitempty`: zero values of non-pointer fields are not serialized.
fn drop_omitempty(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if !is_map_field(k, child) {
                    drop_omitempty(child);
                }
            }
            map.retain(|k, child| !safeapp::apiserver::dropped_when_zero(k, child));
        }
        Value::Array(items) => items.iter_mut().for_each(drop_omitempty),
        _ => {}
    }
}

/// Go's defaulting of a field: a value field is defaulted when zero, a pointer field
/// (`replicas`, `terminationGracePeriodSeconds`...) only when unset: its zero is a value.
fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let pointer = safeapp::apiserver::KEPT_ZERO_FIELDS.contains(&key);
        let absent = map.get(key).is_none_or(|v| {
            v.is_null() || v == &json!("") || (v == &json!(0) && !pointer) || v == &json!([])
        });
        if absent {
            map.insert(key.into(), value);
        }
    }
}

fn each(list: &mut Value, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = list.as_array_mut() {
        items.iter_mut().for_each(&mut f);
    }
}

fn default_probe(p: &mut Value) {
    if p.is_object() {
        set_default(p, "timeoutSeconds", json!(1));
        set_default(p, "periodSeconds", json!(10));
        set_default(p, "successThreshold", json!(1));
        set_default(p, "failureThreshold", json!(3));
        if p.get("httpGet").is_some() {
            set_default(&mut p["httpGet"], "scheme", json!("HTTP"));
        }
    }
}

fn default_container(c: &mut Value) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    let latest = c["image"]
        .as_str()
        .is_some_and(|i| !i.contains('@') && !i.rsplit('/').next().unwrap_or("").contains(':'))
        || c["image"].as_str().is_some_and(|i| i.ends_with(":latest"));
    set_default(
        c,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    each(&mut c["ports"], |p| {
        set_default(p, "protocol", json!("TCP"))
    });
    each(&mut c["env"], |e| {
        if e["valueFrom"]["fieldRef"].is_object() {
            set_default(&mut e["valueFrom"]["fieldRef"], "apiVersion", json!("v1"));
        }
    });
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        if c.get(probe).is_some() {
            default_probe(&mut c[probe]);
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    if spec.get("securityContext").is_none() {
        spec["securityContext"] = json!({});
    }
    each(&mut spec["containers"], default_container);
    each(&mut spec["initContainers"], default_container);
}

/// The Gateway API CRD's defaults (its OpenAPI `default`s, applied by the API server):
/// each backendRef's `group: ""`, `kind: Service` and `weight: 1`.
fn default_route(route: &mut Value) {
    for rule in route["spec"]["rules"].as_array_mut().into_iter().flatten() {
        for backend in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            if let Some(b) = backend.as_object_mut() {
                b.entry("group").or_insert(json!(""));
                b.entry("kind").or_insert(json!("Service"));
                b.entry("weight").or_insert(json!(1));
            }
        }
    }
}

fn default_fields(plural: &str, obj: &mut Value) {
    match plural {
        "jobs" => {
            super::batch::default_job(obj);
            if obj["spec"]["template"]["spec"].is_object() {
                default_pod_spec(&mut obj["spec"]["template"]["spec"]);
            }
            return;
        }
        "cronjobs" => {
            super::batch::default_cron_job(obj);
            if obj["spec"]["jobTemplate"]["spec"]["template"]["spec"].is_object() {
                default_pod_spec(&mut obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]);
            }
            return;
        }
        _ => {}
    }
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    match plural {
        "deployments" => {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            if spec.get("strategy").is_none() {
                spec["strategy"] = json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            }
            if spec["template"]["spec"].is_object() {
                default_pod_spec(&mut spec["template"]["spec"]);
            }
        }
        "statefulsets" => {
            super::apps::default_stateful_set(spec);
            if spec["template"]["spec"].is_object() {
                default_pod_spec(&mut spec["template"]["spec"]);
            }
        }
        "services" => {
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            set_default(spec, "clusterIP", json!("10.96.0.10"));
            set_default(spec, "clusterIPs", json!(["10.96.0.10"]));
            each(&mut spec["ports"], |p| {
                set_default(p, "protocol", json!("TCP"));
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            });
        }
        "horizontalpodautoscalers" => {
            let behavior = spec
                .as_object_mut()
                .map(|m| m.entry("behavior").or_insert(json!({})));
            if let Some(b) = behavior {
                set_default(
                    b,
                    "scaleUp",
                    json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                           "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                        {"type": "Percent", "value": 100, "periodSeconds": 15}]}),
                );
                if let Some(down) = b.get_mut("scaleDown") {
                    set_default(down, "selectPolicy", json!("Max"));
                    set_default(
                        down,
                        "policies",
                        json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
                    );
                }
            }
        }
        _ => {}
    }
}

/// Canonical quantity text, as the API server writes it back: the shortest exact form
/// (`0.5` → `500m`, `1000m` → `1`, `1024Mi` → `1Gi`, `2048Ki` → `2Mi`).
pub fn canonical_quantity(q: &str) -> String {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    const BINARY: &[&str] = &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if !suffix.is_empty() && BINARY.contains(&suffix) && !number.contains('.') {
        let Ok(mut n) = number.parse::<u64>() else {
            return q.into();
        };
        let mut at = BINARY.iter().position(|s| *s == suffix).unwrap_or(0);
        while n != 0 && n % 1024 == 0 && at + 1 < BINARY.len() {
            n /= 1024;
            at += 1;
        }
        return format!("{n}{}", BINARY[at]);
    }
    let scale = match suffix {
        "m" => -3,
        "" => 0,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        _ => return q.into(),
    };
    // The value in milli-units, exactly.
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int}{frac}");
    let exp = scale + 3 - frac.len() as i32;
    let Ok(mut milli) = digits.parse::<u128>() else {
        return q.into();
    };
    if exp < 0 {
        let div = 10u128.pow(exp.unsigned_abs());
        if milli % div != 0 {
            return q.into();
        }
        milli /= div;
    } else {
        milli *= 10u128.pow(exp as u32);
    }
    if milli == 0 {
        return "0".into();
    }
    for (suffix, per) in [
        ("G", 10u128.pow(12)),
        ("M", 10u128.pow(9)),
        ("k", 10u128.pow(6)),
        ("", 1000),
    ] {
        if milli % per == 0 {
            return format!("{}{suffix}", milli / per);
        }
    }
    format!("{milli}m")
}

fn canonical_quantities(v: &mut Value, parent: Option<&str>) {
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child = map.get_mut(&k).expect("key");
                if let Value::String(s) = child {
                    if safeapp::apiserver::is_quantity(parent, &k) && !s.ends_with('%') {
                        *s = canonical_quantity(s);
                    }
                } else {
                    canonical_quantities(child, Some(&k));
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| canonical_quantities(i, parent)),
        _ => {}
    }
}

/// Parses a request path into its RBAC attributes and storage address: the collection
/// path (`/apis/apps/v1/namespaces/shop/deployments`, or without a namespace for a list
/// across all of them), the plural, and the name and subresource.
pub struct Address {
    /// `/api/v1` or `/apis/{group}/{version}`.
    pub prefix: String,
    pub group: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Address {
    pub fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (prefix, group, rest) = match *parts.first()? {
            "api" => (
                format!("/api/{}", parts.get(1)?),
                String::new(),
                &parts[2..],
            ),
            "apis" => (
                format!("/apis/{}/{}", parts.get(1)?, parts.get(2)?),
                parts[1].to_string(),
                &parts[3..],
            ),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
            _ => (None, rest),
        };
        Some(Self {
            prefix,
            group,
            namespace,
            plural: rest.first()?.to_string(),
            name: rest.get(1).map(|s| s.to_string()),
            sub: rest.get(2).map(|s| s.to_string()),
        })
    }

    /// The resource as the server names it in messages: `jobs.batch`, `services`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The collection path of one namespace.
    pub fn collection(&self) -> Option<String> {
        Some(format!(
            "{}/namespaces/{}/{}",
            self.prefix,
            self.namespace.as_ref()?,
            self.plural
        ))
    }

    /// Whether a stored collection path is one of this (possibly all-namespace) list's.
    pub fn lists(&self, coll: &str) -> bool {
        match self.collection() {
            Some(c) => c == coll,
            None => {
                coll.starts_with(&format!("{}/namespaces/", self.prefix))
                    && coll.ends_with(&format!("/{}", self.plural))
            }
        }
    }

    pub fn attributes(&self, verb: &'static str) -> Attributes {
        Attributes {
            verb,
            group: self.group.clone(),
            resource: match &self.sub {
                Some(s) => format!("{}/{s}", self.plural),
                None => self.plural.clone(),
            },
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// An object's JSON map, for inserting metadata.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata object")
}
