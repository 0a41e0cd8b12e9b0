//! A small in-memory Kubernetes API for driving the real reconcile function in tests,
//! in the spirit of kube-rs's `tower-test` mocks but stateful: GET, LIST, server-side
//! apply (PATCH application/apply-patch+yaml, with managedFields and removal of fields
//! the manager stopped applying; `dryRun=All` answers without storing), merge patches
//! (status), DELETE and POST. Every request
//! is recorded so tests can count writes; failures can be injected.
//!
//! Server-side apply ownership as the real server keeps it (SAFEAPP.md §7c): an apply
//! owns only what its body contains, so a field another manager wrote (`edit`, or a merge
//! patch through the API, recorded as that manager's `Update`) survives an apply that
//! leaves it out; an empty list in an applied body is dropped first (`omitempty`) and so
//! claims and clears nothing; lists without merge keys are atomic (replaced whole).
//!
//! It follows the real API server's rules where they matter (see `apiserver.rs`):
//! RBAC when [`FakeApi::with_rbac`] is used (apply of a missing object needs `create`),
//! `omitempty` drops, defaulting and canonical quantities on every write of a built-in
//! kind, and for `batch/v1` Jobs and CronJobs (`batch.rs`) the generated Job selector,
//! the spec/status split, a 409 for a second POST of a name, and the server's 422 for
//! an invalid write (an immutable Job template, a status transition the job controller
//! would not make). `dryRun=All` never stores.
//!
//! kube-fake-client 0.3 is built on kube 4, which would put a second kube major in the
//! tree, so the project keeps this fake instead.

#![allow(dead_code)]

pub mod apiserver;
pub mod apps;
pub mod batch;
pub mod harness;
pub mod running;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
}

struct Failure {
    method: Method,
    path_contains: String,
    code: u16,
    message: String,
    remaining: usize,
}

#[derive(Default)]
struct State {
    /// (collection path, name) -> object.
    objects: BTreeMap<(String, String), Value>,
    /// (collection path, name, manager) -> the last object that manager applied.
    applied: BTreeMap<(String, String, String), Value>,
    calls: Vec<Call>,
    failures: Vec<Failure>,
    resource_version: u64,
    uids: u64,
    /// Time spent serving requests (the "API server" side), for benchmarks.
    serve_time: std::time::Duration,
    /// The caller's RBAC rules; None: everything is allowed.
    rbac: Option<apiserver::Rbac>,
    /// Added to every request (not to a watch's events), as a real server's round trip.
    latency: std::time::Duration,
    /// Added to a list per item it returns: a real API server's list of thousands of
    /// objects takes a while to serialize and send.
    list_cost: std::time::Duration,
    /// Feature gates turned on (`MaxUnavailableStatefulSet`); off by default, as on
    /// most servers: a field behind a gate that is off is dropped on write.
    features: std::collections::BTreeSet<String>,
    /// Resources whose CRD is not installed (`podmonitors`): every request to them is
    /// the server's 404, as for any resource it does not know.
    missing: std::collections::BTreeSet<String>,
    /// Watch events of collections whose path contains the key arrive this much later
    /// (a loaded API server's watch cache lags behind its writes, kind by kind).
    watch_delays: Vec<(String, std::time::Duration)>,
}

/// How many changes the fake keeps for watches that resume.
const HISTORY: usize = 50_000;

/// A change's resourceVersion, as a number.
fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One change, as a watch reports it: (collection, ADDED/MODIFIED/DELETED, object), and
/// when it was made.
type Change = (String, &'static str, Value, tokio::time::Instant);

/// The fake API server.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    /// Every change, for the open watches.
    changes: tokio::sync::broadcast::Sender<Change>,
    /// The latest changes, replayed to a watch that resumes from a resourceVersion (as
    /// the API server's watch cache does after a dropped connection).
    history: Arc<Mutex<std::collections::VecDeque<Change>>>,
    /// Another caller's RBAC for requests through this handle (see `with_user`).
    caller: Option<Arc<apiserver::Rbac>>,
    /// Whether the server is down (`set_available`): every request answers 503 and open
    /// watches end.
    down: tokio::sync::watch::Sender<bool>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            changes: tokio::sync::broadcast::channel(65_536).0,
            caller: None,
            down: tokio::sync::watch::channel(false).0,
            history: Arc::default(),
        }
    }
}

/// Collection path of a namespaced resource, as the client requests it.
pub fn collection(api_version: &str, ns: &str, plural: &str) -> String {
    if api_version == "v1" {
        format!("/api/v1/namespaces/{ns}/{plural}")
    } else {
        format!("/apis/{api_version}/namespaces/{ns}/{plural}")
    }
}

/// Names in an object's `metadata.ownerReferences`, in order.
pub fn owner_names(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
           "reason": reason, "message": message, "code": code})
}

/// `fieldsV1` of an applied object: every map key as `f:key`, list items by index.
fn fields_of(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind"))
                .map(|(k, v)| (format!("f:{k}"), fields_of(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("i:{i}"), fields_of(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// The merge key of an item of a keyed list (containers, env, ports, volumes, mounts):
/// server-side apply merges such lists item by item. Other lists are atomic.
fn list_key(item: &Value) -> Option<String> {
    let obj = item.as_object()?;
    ["uid", "mountPath", "name"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

fn keyed(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| list_key(i).is_some())
}

/// JSON merge patch (RFC 7386): maps merge key by key, everything else is replaced.
fn merge(base: &mut Value, patch: &Value) {
    merge_with(base, patch, false);
}

/// Server-side apply's merge: as [`merge`], but keyed lists merge item by item.
fn apply_merge(base: &mut Value, patch: &Value) {
    merge_with(base, patch, true);
}

fn merge_with(base: &mut Value, patch: &Value, keyed_lists: bool) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge_with(b.entry(k.clone()).or_insert(Value::Null), v, keyed_lists);
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if keyed_lists && keyed(p) && keyed(b) => {
            for item in p {
                let key = list_key(item);
                match b.iter_mut().find(|x| list_key(x) == key) {
                    Some(existing) => merge_with(existing, item, true),
                    None => b.push(item.clone()),
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Removes from `target` the fields (and keyed-list items) that `before` had and `after`
/// no longer has, unless another manager (`others`) still applies them: server-side
/// apply's rule.
fn remove_dropped(target: &mut Value, before: &Value, after: &Value, others: &Value) {
    match (target, before) {
        (Value::Object(t), Value::Object(b)) => {
            for (k, bv) in b {
                let other = others.get(k).unwrap_or(&Value::Null);
                match after.get(k) {
                    None if other.is_null() => {
                        t.remove(k);
                    }
                    None => {}
                    Some(av) => {
                        if let Some(tv) = t.get_mut(k) {
                            remove_dropped(tv, bv, av, other);
                        }
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(b)) if keyed(b) => {
            let find = |list: &Value, key: &Option<String>| -> Option<Value> {
                list.as_array()?
                    .iter()
                    .find(|x| list_key(x) == *key)
                    .cloned()
            };
            for bv in b {
                let key = list_key(bv);
                let other = find(others, &key).unwrap_or(Value::Null);
                match find(after, &key) {
                    None if other.is_null() => t.retain(|x| list_key(x) != key),
                    None => {}
                    Some(av) => {
                        if let Some(tv) = t.iter_mut().find(|x| list_key(x) == key) {
                            remove_dropped(tv, bv, &av, &other);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// Removes every empty list of an applied object: what `omitempty` drops.
fn drop_empty_lists(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.as_array().is_some_and(Vec::is_empty));
            m.values_mut().for_each(drop_empty_lists);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty_lists),
        _ => {}
    }
}

/// Removes every null of a merge patch (the fields it deletes own nothing).
fn drop_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, v| !v.is_null());
        m.values_mut().for_each(drop_nulls);
    }
}

/// The equality label selector of a request (`a=b,c=d`), as the controller's watches use.
fn label_selector(query: &str) -> Vec<(String, String)> {
    query_param(query, "labelSelector")
        .map(|s| {
            s.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn selects(selector: &[(String, String)], obj: &Value) -> bool {
    selector
        .iter()
        .all(|(k, val)| obj["metadata"]["labels"][k] == val.as_str())
}

/// The changes a broadcast receiver gets, as a stream (a lagging receiver skips ahead).
fn tokio_stream_of(
    rx: tokio::sync::broadcast::Receiver<Change>,
) -> impl futures::Stream<Item = Change> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(change) => return Some((change, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

impl FakeApi {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the open watches of `coll` about a change.
    fn notify(&self, coll: &str, kind: &'static str, obj: &Value) {
        let change = (
            coll.to_string(),
            kind,
            obj.clone(),
            tokio::time::Instant::now(),
        );
        let mut history = self.history.lock().unwrap();
        history.push_back(change.clone());
        if history.len() > HISTORY {
            history.pop_front();
        }
        // Sent under the history lock: a watch opening takes its replay and its
        // subscription together, so it misses nothing and sees nothing twice.
        let _ = self.changes.send(change);
    }

    /// A fake whose caller has only the permissions of `rbac`.
    pub fn with_rbac(rbac: apiserver::Rbac) -> Self {
        let fake = Self::default();
        fake.state.lock().unwrap().rbac = Some(rbac);
        fake
    }

    /// Every request takes `latency` longer, as over a network to a real API server.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// Takes the CRD of `plural` away (or brings it back with [`FakeApi::install`]):
    /// requests to it answer 404, its watches too.
    pub fn uninstall(&self, plural: &str) {
        self.state
            .lock()
            .unwrap()
            .missing
            .insert(plural.to_string());
    }

    /// Installs the CRD of `plural` again.
    pub fn install(&self, plural: &str) {
        self.state.lock().unwrap().missing.remove(plural);
    }

    /// Turns a feature gate on (see [`apiserver::drop_gated_fields`]).
    pub fn enable_feature(&self, gate: &str) {
        self.state.lock().unwrap().features.insert(gate.to_string());
    }

    /// Every list takes `per_item` longer per object it returns (a real server's list of
    /// 1,000 Deployments takes ~0.3 s: `per_item` 300 µs).
    pub fn set_list_cost(&self, per_item: std::time::Duration) {
        self.state.lock().unwrap().list_cost = per_item;
    }

    /// Watch events of every collection whose path contains `path_contains` (a plural:
    /// "safeapps", "poddisruptionbudgets") reach the watches `delay` after the write, in
    /// order: the interleavings of a loaded API server, where a watch event can come
    /// after the writer's next request.
    pub fn delay_watch(&self, path_contains: &str, delay: std::time::Duration) {
        self.state
            .lock()
            .unwrap()
            .watch_delays
            .push((path_contains.into(), delay));
    }

    /// Takes the server down (every request answers 503, open watches end) or brings it
    /// back, as an API server restart does.
    pub fn set_available(&self, available: bool) {
        self.down.send_replace(!available);
    }

    /// A fake whose caller is the operator with the RBAC of `config/rbac` as shipped.
    pub fn as_operator() -> Self {
        Self::with_rbac(apiserver::Rbac::operator())
    }

    /// A kube Client whose every request is served by this fake.
    pub fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.handle(req).await) }
        });
        Client::new(service, "default")
    }

    /// A client of this fake behind the operator's client-side rate limit.
    pub fn limited_client(&self, qps: f64, burst: u32) -> Client {
        use tower::Layer;
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.handle(req).await) }
        });
        let limited = safeapp::ratelimit::RateLimitLayer::new(qps, burst).layer(service);
        Client::new(limited, "default")
    }

    /// Stores an object as if someone had created it (not recorded as a request).
    pub fn insert(&self, coll: &str, mut obj: Value) -> Value {
        let mut st = self.state.lock().unwrap();
        st.resource_version += 1;
        st.uids += 1;
        let rv = st.resource_version.to_string();
        let uid = format!("uid-{}", st.uids);
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.entry("uid").or_insert(json!(uid));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.entry("generation").or_insert(json!(1));
        meta.entry("creationTimestamp")
            .or_insert(json!("2026-01-01T00:00:00Z"));
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let kind = if st
            .objects
            .insert((coll.to_string(), name), obj.clone())
            .is_some()
        {
            "MODIFIED"
        } else {
            "ADDED"
        };
        drop(st);
        self.notify(coll, kind, &obj);
        obj
    }

    pub fn get(&self, coll: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&(coll.to_string(), name.to_string()))
            .cloned()
    }

    /// Changes a stored object as another client would (not recorded), optionally
    /// recording `manager` as the writer of `fields` (a fieldsV1 tree).
    pub fn edit(
        &self,
        coll: &str,
        name: &str,
        manager: &str,
        fields: Value,
        f: impl FnOnce(&mut Value),
    ) {
        let mut st = self.state.lock().unwrap();
        st.resource_version += 1;
        let rv = st.resource_version.to_string();
        let obj = st
            .objects
            .get_mut(&(coll.to_string(), name.to_string()))
            .expect("object to edit");
        let old_spec = obj.get("spec").cloned();
        f(obj);
        if obj.get("spec").cloned() != old_spec {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        obj["metadata"]["resourceVersion"] = json!(rv);
        let entry = json!({"manager": manager, "operation": "Update", "apiVersion": "v1",
                           "time": "2026-06-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields});
        let managed = obj["metadata"]
            .as_object_mut()
            .expect("metadata")
            .entry("managedFields")
            .or_insert(json!([]));
        managed.as_array_mut().expect("list").push(entry);
        let obj = obj.clone();
        drop(st);
        self.notify(coll, "MODIFIED", &obj);
    }

    /// Removes a stored object as another client would (not recorded).
    pub fn remove(&self, coll: &str, name: &str) -> Option<Value> {
        let mut st = self.state.lock().unwrap();
        let mut removed = st.objects.remove(&(coll.to_string(), name.to_string()));
        if let Some(obj) = &mut removed {
            // A delete is a change of its own, with a new resourceVersion.
            st.resource_version += 1;
            obj["metadata"]["resourceVersion"] = json!(st.resource_version.to_string());
        }
        drop(st);
        if let Some(obj) = &removed {
            self.notify(coll, "DELETED", obj);
        }
        removed
    }

    /// The next `times` requests of `method` whose path (with its query, so
    /// `fieldManager=x` picks one client's writes) contains `path_contains` fail with
    /// `code`.
    pub fn fail(&self, method: Method, path_contains: &str, code: u16, times: usize) {
        self.fail_with(method, path_contains, code, "injected failure", times);
    }

    /// Like [`FakeApi::fail`], with the API's message (an admission webhook's, say).
    pub fn fail_with(
        &self,
        method: Method,
        path_contains: &str,
        code: u16,
        message: &str,
        times: usize,
    ) {
        self.state.lock().unwrap().failures.push(Failure {
            method,
            path_contains: path_contains.into(),
            code,
            message: message.into(),
            remaining: times,
        });
    }

    /// Forgets every injected failure.
    pub fn clear_failures(&self) {
        self.state.lock().unwrap().failures.clear();
    }

    /// Every stored object of a collection, in name order.
    pub fn list(&self, coll: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((c, _), _)| c == coll)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Requests that change something (everything but GET).
    pub fn writes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method != Method::GET)
            .collect()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// Total time spent serving requests so far.
    pub fn serve_time(&self) -> std::time::Duration {
        self.state.lock().unwrap().serve_time
    }

    async fn handle(&self, req: Request<Body>) -> Response<BoxBody<Bytes, Infallible>> {
        let latency = self.state.lock().unwrap().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if *self.down.borrow() {
            let body = status(503, "ServiceUnavailable", "the API server is restarting");
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())).boxed())
                .unwrap();
        }
        if let Some(address) = apiserver::Address::parse(req.uri().path())
            && self.state.lock().unwrap().missing.contains(&address.plural)
        {
            self.state.lock().unwrap().calls.push(Call {
                method: req.method().clone(),
                path: req.uri().path().to_string(),
            });
            // Authorization comes first: without the grant, 403 even for a resource the
            // server does not know.
            let verb = safeapp::metrics::verb_of(req.method(), req.uri().path(), req.uri().query());
            if let Some(denied) = self.deny(req.uri().path(), verb) {
                return Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(serde_json::to_vec(&denied).unwrap())).boxed())
                    .unwrap();
            }
            let body = status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())).boxed())
                .unwrap();
        }
        let started = std::time::Instant::now();
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if parts.method == Method::GET && query.contains("watch=") {
            // A watch: every later change of the collection, as JSON lines, until the
            // client goes away.
            self.state.lock().unwrap().calls.push(Call {
                method: Method::GET,
                path: format!("{path}?watch"),
            });
            if let Some(denied) = self.deny(&path, "watch") {
                return Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(serde_json::to_vec(&denied).unwrap())).boxed())
                    .unwrap();
            }
            let Some(address) = apiserver::Address::parse(&path) else {
                let never =
                    futures::stream::pending::<Result<http_body::Frame<Bytes>, Infallible>>();
                return Response::builder()
                    .status(StatusCode::OK)
                    .body(StreamBody::new(never).boxed())
                    .unwrap();
            };
            let selector = label_selector(&query);
            let delay = self
                .state
                .lock()
                .unwrap()
                .watch_delays
                .iter()
                .find(|(p, _)| path.contains(p.as_str()))
                .map(|(_, d)| *d);
            // Resuming from a resourceVersion: the changes since, then the live ones.
            let since: u64 = query_param(&query, "resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
            let (replay, live) = {
                let history = self.history.lock().unwrap();
                let replay: Vec<Change> = history
                    .iter()
                    .filter(|c| rv_of(&c.2) > since)
                    .cloned()
                    .collect();
                (replay, self.changes.subscribe())
            };
            let changes =
                futures::StreamExt::chain(futures::stream::iter(replay), tokio_stream_of(live));
            // Each event is held until `delay` after its write, keeping their order.
            let changes = futures::StreamExt::then(changes, move |change| async move {
                if let Some(delay) = delay {
                    tokio::time::sleep_until(change.3 + delay).await;
                }
                change
            });
            let events = futures::StreamExt::filter_map(changes, move |(coll, kind, obj, _)| {
                let matches = address.lists(&coll) && selects(&selector, &obj);
                async move {
                    matches.then(|| {
                        let mut line =
                            serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap();
                        line.push(b'\n');
                        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(line)))
                    })
                }
            });
            // A server going down ends its open watches.
            let mut down = self.down.subscribe();
            let events = futures::StreamExt::take_until(events, async move {
                let _ = down.wait_for(|d| *d).await;
            });
            return Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(StreamBody::new(events).boxed())
                .unwrap();
        }
        let (code, value) = self.serve(&parts.method, &path, &query, &content_type, &bytes);
        let list_cost = self.state.lock().unwrap().list_cost;
        if let Some(items) = value["items"].as_array().filter(|_| !list_cost.is_zero()) {
            let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
            tokio::time::sleep(list_cost * n).await;
        }
        let response = Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())).boxed())
            .unwrap();
        self.state.lock().unwrap().serve_time += started.elapsed();
        response
    }

    /// The same API, called by another identity with `rbac` (e.g. a CI job next to the
    /// operator): requests through the returned handle are authorized by `rbac`.
    pub fn with_user(&self, rbac: apiserver::Rbac) -> Self {
        Self {
            caller: Some(Arc::new(rbac)),
            ..self.clone()
        }
    }

    /// The 403 for `verb` on `path` when RBAC is on and refuses it.
    fn deny(&self, path: &str, verb: &'static str) -> Option<Value> {
        let st = self.state.lock().unwrap();
        let rbac = self.caller.as_deref().or(st.rbac.as_ref())?;
        let address = apiserver::Address::parse(path)?;
        let message = rbac.check(&address.attributes(verb))?;
        Some(status(403, "Forbidden", &message))
    }

    fn serve(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let mut st = self.state.lock().unwrap();
        st.calls.push(Call {
            method: method.clone(),
            path: path.to_string(),
        });
        if let Some(f) = st.failures.iter_mut().find(|f| {
            f.remaining > 0
                && f.method == *method
                && format!("{path}?{query}").contains(&f.path_contains)
        }) {
            f.remaining -= 1;
            let (code, message) = (f.code, f.message.clone());
            return (code, status(code, "InternalError", &message));
        }
        let Some(address) = apiserver::Address::parse(path) else {
            return (404, status(404, "NotFound", "not an API path"));
        };
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let apply = content_type.starts_with("application/apply-patch");
        let key = address.collection().zip(address.name.clone());
        let exists = key.as_ref().is_some_and(|k| st.objects.contains_key(k));
        // RBAC, as the API server authorizes: the request's verb, and for an apply that
        // creates, `create` as well.
        let verbs: &[&'static str] = match (method.clone(), address.name.is_some()) {
            (Method::GET, true) => &["get"],
            (Method::GET, false) => &["list"],
            (Method::POST, _) => &["create"],
            (Method::PUT, _) => &["update"],
            (Method::DELETE, true) => &["delete"],
            (Method::DELETE, false) => &["deletecollection"],
            (Method::PATCH, _) if apply && !exists => &["patch", "create"],
            (Method::PATCH, _) => &["patch"],
            _ => &[],
        };
        if let Some(rbac) = self.caller.as_deref().or(st.rbac.as_ref()) {
            for verb in verbs {
                if let Some(message) = rbac.check(&address.attributes(verb)) {
                    return (403, status(403, "Forbidden", &message));
                }
            }
        }
        let plural = address.plural.clone();
        let qualified = address.qualified();
        let sub = address.sub.clone();
        let dry_run = query_param(query, "dryRun") == Some("All");

        match (method.clone(), key) {
            (Method::GET, None) => {
                let selector = label_selector(query);
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((c, _), _)| address.lists(c))
                    .map(|(_, v)| v.clone())
                    .filter(|v| selects(&selector, v))
                    .collect();
                let rv = st.resource_version.to_string();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}),
                )
            }
            (Method::GET, Some((coll, name))) => match st.objects.get(&(coll, name.clone())) {
                Some(v) => (200, v.clone()),
                None => (
                    404,
                    status(
                        404,
                        "NotFound",
                        &format!("{qualified} \"{name}\" not found"),
                    ),
                ),
            },
            (Method::DELETE, Some((coll, name))) => {
                match st.objects.remove(&(coll.clone(), name.clone())) {
                    Some(mut v) => {
                        st.resource_version += 1;
                        v["metadata"]["resourceVersion"] = json!(st.resource_version.to_string());
                        self.notify(&coll, "DELETED", &v);
                        st.applied
                            .retain(|(c, n, _), _| !(*c == coll && *n == name));
                        (200, v)
                    }
                    None => (
                        404,
                        status(
                            404,
                            "NotFound",
                            &format!("{qualified} \"{name}\" not found"),
                        ),
                    ),
                }
            }
            (Method::POST, _) => {
                let Some(coll) = address.collection() else {
                    return (
                        405,
                        status(405, "MethodNotAllowed", "not served by the fake"),
                    );
                };
                let mut obj = body;
                let name = obj["metadata"]["name"].as_str().map(str::to_string);
                if batch::is_batch(&plural)
                    && let Some(name) = &name
                    && st.objects.contains_key(&(coll.clone(), name.clone()))
                {
                    return (
                        409,
                        status(
                            409,
                            "AlreadyExists",
                            &format!("{qualified} \"{name}\" already exists"),
                        ),
                    );
                }
                st.resource_version += 1;
                st.uids += 1;
                let (rv, uid) = (st.resource_version, st.uids);
                let meta = apiserver::meta_mut(&mut obj);
                let name = name.unwrap_or_else(|| format!("generated-{uid}"));
                meta.insert("name".into(), json!(name));
                meta.insert("uid".into(), json!(format!("uid-{uid}")));
                meta.insert("resourceVersion".into(), json!(rv.to_string()));
                apiserver::prepare_for_create(&plural, &mut obj);
                apiserver::store(&plural, &mut obj);
                apiserver::drop_gated_fields(&plural, &mut obj, &st.features);
                if let Some(invalid) = apiserver::validate(&plural, None, &obj, None) {
                    return (422, invalid);
                }
                if dry_run {
                    return (201, obj);
                }
                self.notify(&coll, "ADDED", &obj);
                st.objects.insert((coll, name), obj.clone());
                (201, obj)
            }
            (Method::PATCH, Some((coll, name))) => {
                let key = (coll.clone(), name.clone());
                if apply {
                    let manager = query_param(query, "fieldManager")
                        .unwrap_or("unknown")
                        .to_string();
                    // An empty list never reaches the stored object (`omitempty`), so it
                    // claims nothing and clears nothing another manager wrote (§7c).
                    let mut body = body;
                    drop_empty_lists(&mut body);
                    let existing = st.objects.get(&key).cloned();
                    if sub.is_some() && existing.is_none() {
                        return (
                            404,
                            status(
                                404,
                                "NotFound",
                                &format!("{qualified} \"{name}\" not found"),
                            ),
                        );
                    }
                    let previous = st
                        .applied
                        .get(&(coll.clone(), name.clone(), manager.clone()))
                        .cloned();
                    let mut obj = existing.clone().unwrap_or_else(|| json!({"metadata": {}}));
                    if let Some(prev) = &previous {
                        let mut prev_spec_only = prev.clone();
                        if let Some(m) = prev_spec_only.as_object_mut() {
                            m.remove("metadata");
                        }
                        let mut others = json!({});
                        for ((c, n, m), v) in &st.applied {
                            if *c == coll && *n == name && *m != manager {
                                apply_merge(&mut others, v);
                            }
                        }
                        remove_dropped(&mut obj, &prev_spec_only, &body, &others);
                    }
                    apply_merge(&mut obj, &body);
                    match &existing {
                        None => {
                            // A create: the object gets its uid first (a Job's generated
                            // selector is made of it).
                            let uid = if dry_run {
                                "dry-run-uid".to_string()
                            } else {
                                st.uids += 1;
                                format!("uid-{}", st.uids)
                            };
                            let meta = apiserver::meta_mut(&mut obj);
                            meta.entry("name").or_insert(json!(name));
                            meta.insert("uid".into(), json!(uid));
                            apiserver::prepare_for_create(&plural, &mut obj);
                        }
                        Some(old) => {
                            apiserver::prepare_for_update(&plural, sub.as_deref(), &mut obj, old)
                        }
                    }
                    apiserver::store(&plural, &mut obj);
                    apiserver::drop_gated_fields(&plural, &mut obj, &st.features);
                    if let Some(invalid) =
                        apiserver::validate(&plural, sub.as_deref(), &obj, existing.as_ref())
                    {
                        return (422, invalid);
                    }
                    if dry_run {
                        // What would be stored, as the API server answers a dry run:
                        // nothing is kept, nobody is notified.
                        return (if existing.is_some() { 200 } else { 201 }, obj);
                    }
                    st.applied
                        .insert((coll.clone(), name.clone(), manager.clone()), body.clone());
                    let changed = existing.as_ref().map(|e| {
                        let mut a = e.clone();
                        let mut b = obj.clone();
                        for v in [&mut a, &mut b] {
                            if let Some(m) = v["metadata"].as_object_mut() {
                                m.remove("managedFields");
                                m.remove("resourceVersion");
                            }
                        }
                        a != b
                    });
                    if changed != Some(false) {
                        st.resource_version += 1;
                        let rv = st.resource_version.to_string();
                        let meta = apiserver::meta_mut(&mut obj);
                        meta.insert("resourceVersion".into(), json!(rv));
                        if existing.is_none() {
                            meta.insert("generation".into(), json!(1));
                            meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
                        } else if existing.as_ref().and_then(|e| e.get("spec")) != obj.get("spec") {
                            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
                            obj["metadata"]["generation"] = json!(g + 1);
                        }
                    }
                    let entry = json!({"manager": manager, "operation": "Apply", "apiVersion": body["apiVersion"],
                                       "time": "2026-06-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields_of(&body)});
                    let managed = apiserver::meta_mut(&mut obj)
                        .entry("managedFields")
                        .or_insert(json!([]));
                    let list = managed.as_array_mut().expect("list");
                    list.retain(|e| e["manager"] != json!(manager));
                    list.push(entry);
                    if changed != Some(false) {
                        let kind = if existing.is_some() {
                            "MODIFIED"
                        } else {
                            "ADDED"
                        };
                        self.notify(&coll, kind, &obj);
                    }
                    st.objects.insert(key, obj.clone());
                    (if existing.is_some() { 200 } else { 201 }, obj)
                } else {
                    let Some(old) = st.objects.get(&key).cloned() else {
                        return (
                            404,
                            status(
                                404,
                                "NotFound",
                                &format!("{qualified} \"{name}\" not found"),
                            ),
                        );
                    };
                    let mut obj = old.clone();
                    if sub.as_deref() == Some("status") {
                        let mut patch = body.clone();
                        if let Some(m) = patch.as_object_mut() {
                            m.retain(|k, _| k == "status");
                        }
                        merge(&mut obj, &patch);
                        if batch::is_batch(&plural) {
                            apiserver::prepare_for_update(&plural, sub.as_deref(), &mut obj, &old);
                            apiserver::store(&plural, &mut obj);
                            apiserver::drop_gated_fields(&plural, &mut obj, &st.features);
                        }
                    } else {
                        merge(&mut obj, &body);
                        apiserver::prepare_for_update(&plural, sub.as_deref(), &mut obj, &old);
                        apiserver::store(&plural, &mut obj);
                        apiserver::drop_gated_fields(&plural, &mut obj, &st.features);
                        // An update owns what it wrote, as its manager (the field nobody
                        // applied is then that writer's).
                        let manager = query_param(query, "fieldManager").unwrap_or("unknown");
                        let mut written = body.clone();
                        drop_nulls(&mut written);
                        let entry = json!({"manager": manager, "operation": "Update",
                                           "apiVersion": body["apiVersion"],
                                           "time": "2026-06-01T00:00:00Z", "fieldsType": "FieldsV1",
                                           "fieldsV1": fields_of(&written)});
                        let managed = apiserver::meta_mut(&mut obj)
                            .entry("managedFields")
                            .or_insert(json!([]));
                        let list = managed.as_array_mut().expect("list");
                        list.retain(|e| {
                            !(e["manager"] == json!(manager) && e["operation"] == "Update")
                        });
                        list.push(entry);
                        // Any change of the spec is a new generation (the fake does this
                        // for the batch kinds only so far).
                        if batch::is_batch(&plural) && obj.get("spec") != old.get("spec") {
                            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                            obj["metadata"]["generation"] = json!(g + 1);
                        }
                    }
                    if let Some(invalid) =
                        apiserver::validate(&plural, sub.as_deref(), &obj, Some(&old))
                    {
                        return (422, invalid);
                    }
                    if dry_run {
                        return (200, obj);
                    }
                    st.resource_version += 1;
                    let rv = st.resource_version.to_string();
                    obj["metadata"]["resourceVersion"] = json!(rv);
                    st.objects.insert(key, obj.clone());
                    self.notify(&coll, "MODIFIED", &obj);
                    (200, obj)
                }
            }
            _ => (
                405,
                status(405, "MethodNotAllowed", "not served by the fake"),
            ),
        }
    }
}

/// What [`FakeApi::deployment_controller`] saw: rollouts started and finished, and the
/// most that ran at once.
#[derive(Debug, Default, Clone)]
pub struct RolloutStats {
    pub started: usize,
    pub finished: usize,
    pub most_at_once: usize,
    /// Between the end of one rollout and the start of the next, each time one started
    /// while none had started since the last end.
    pub hand_overs: Vec<std::time::Duration>,
    pub rolling: usize,
    last_end: Option<tokio::time::Instant>,
}

impl FakeApi {
    /// Plays the Deployment controller on `coll`: a Deployment whose generation it has not
    /// observed is observed at once when paused (what runs stays available), and
    /// otherwise rolls for `rollout`, then is available on its new template. Driven by
    /// the fake's change feed (as the real controller by its informers), so it costs
    /// nothing between changes. Runs until the returned task is aborted.
    pub fn deployment_controller(
        &self,
        coll: &str,
        rollout: std::time::Duration,
    ) -> (Arc<Mutex<RolloutStats>>, tokio::task::JoinHandle<()>) {
        let stats = Arc::new(Mutex::new(RolloutStats::default()));
        let fake = self.clone();
        let coll = coll.to_string();
        let out = stats.clone();
        let mut changes = self.changes.subscribe();
        let existing = self.list(&coll);
        let task = tokio::spawn(async move {
            // name -> (generation, when its rollout ends)
            let mut rolling: std::collections::HashMap<String, (i64, tokio::time::Instant)> =
                std::collections::HashMap::new();
            let mut pending: std::collections::VecDeque<Value> = existing.into();
            loop {
                // Every change seen so far, then the next rollout to end, or a change.
                while let Some(d) = pending.pop_front() {
                    fake.observe_deployment(&coll, &d, rollout, &mut rolling, &out);
                }
                let next_end = rolling.values().map(|(_, end)| *end).min();
                let sleep = async {
                    match next_end {
                        Some(end) => tokio::time::sleep_until(end).await,
                        None => futures::future::pending().await,
                    }
                };
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok((c, kind, obj, _)) if c == coll && kind != "DELETED" => pending.push_back(obj),
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            pending.extend(fake.list(&coll));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    () = sleep => {
                        let now = tokio::time::Instant::now();
                        let done: Vec<String> = rolling
                            .iter()
                            .filter(|(_, (_, end))| *end <= now)
                            .map(|(n, _)| n.clone())
                            .collect();
                        for name in done {
                            let Some((generation, _)) = rolling.remove(&name) else { continue };
                            let Some(d) = fake.get(&coll, &name) else { continue };
                            if d["metadata"]["generation"].as_i64() != Some(generation) {
                                continue;
                            }
                            let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
                            fake.edit(&coll, &name, "kube-controller-manager", json!({}), |d| {
                                d["status"] = json!({"observedGeneration": generation,
                                    "replicas": replicas, "updatedReplicas": replicas,
                                    "availableReplicas": replicas, "readyReplicas": replicas});
                            });
                            let mut st = out.lock().unwrap();
                            st.finished += 1;
                            st.rolling = rolling.len();
                            st.last_end = Some(now);
                        }
                    }
                }
            }
        });
        (stats, task)
    }

    /// One Deployment as the Deployment controller sees it change.
    fn observe_deployment(
        &self,
        coll: &str,
        d: &Value,
        rollout: std::time::Duration,
        rolling: &mut std::collections::HashMap<String, (i64, tokio::time::Instant)>,
        out: &Mutex<RolloutStats>,
    ) {
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let observed = d["status"]["observedGeneration"].as_i64();
        if observed == Some(generation) || rolling.get(&name).is_some_and(|(g, _)| *g == generation)
        {
            return;
        }
        if d["spec"]["paused"] == true {
            let available = d["status"]["availableReplicas"].clone();
            self.edit(coll, &name, "kube-controller-manager", json!({}), |d| {
                d["status"] = json!({"observedGeneration": generation,
                    "replicas": replicas, "updatedReplicas": 0,
                    "availableReplicas": available, "readyReplicas": available});
            });
            return;
        }
        let now = tokio::time::Instant::now();
        rolling.insert(name.clone(), (generation, now + rollout));
        self.edit(coll, &name, "kube-controller-manager", json!({}), |d| {
            d["status"] = json!({"observedGeneration": generation,
                "replicas": replicas + 1, "updatedReplicas": 1,
                "availableReplicas": replicas, "readyReplicas": replicas});
        });
        let mut st = out.lock().unwrap();
        st.started += 1;
        st.rolling = rolling.len();
        st.most_at_once = st.most_at_once.max(rolling.len());
        if let Some(end) = st.last_end.take() {
            st.hand_overs.push(now.duration_since(end));
        }
    }
}
