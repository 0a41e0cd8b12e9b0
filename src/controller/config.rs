//! Config-change rollout: the hash of the data of every ConfigMap and Secret a SafeApp's
//! pods reference, stamped on its pod template (`safeapp.dev/config-hash`), so a data
//! change rolls the Deployment and a change back rolls it back.
//!
//! Only what is referenced is read and kept:
//! - a metadata-only watch of ConfigMaps (and Secrets, with `--watch-secrets`) keeps no
//!   store; each event is checked against the [`ConfigIndex`] of referenced objects;
//! - the index caches one digest per referenced object with the resourceVersion it was
//!   read at. A watch event with another resourceVersion drops the digest and triggers
//!   the apps that reference it; their reconcile reads the object once (a label edit
//!   re-reads, hashes the same data, and rolls nothing);
//! - a referenced object that does not exist hashes as "missing" and is reported in
//!   status (unless every reference to it is `optional: true`); its creation triggers
//!   the apps like any change.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::Error;
use crate::api::SafeApp;
use crate::api::v1alpha1::ConfigKind;
use crate::digest;
use crate::validate::ConfigRef;

type Key = (String, ConfigKind, String);

/// What a reconcile learns about an app's referenced config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigState {
    /// Hash over every tracked reference's data; None without tracked references.
    pub hash: Option<String>,
    /// Required references that do not exist, as `Kind/name`.
    pub missing: Vec<String>,
}

#[derive(Default)]
struct Inner {
    /// The apps that reference each object.
    users: HashMap<Key, BTreeSet<String>>,
    /// Each app's references, to update `users` when they change.
    by_app: HashMap<(String, String), Vec<Key>>,
    /// Digest per referenced object (None: it does not exist), with the
    /// resourceVersion it was read at.
    digests: HashMap<Key, (Option<String>, Option<String>)>,
    /// Bumped by every watch event of a referenced object: a digest read before an
    /// event is not stored after it (it may already be stale).
    epochs: HashMap<Key, u64>,
}

/// The referenced ConfigMaps and Secrets, and their digests.
#[derive(Default)]
pub struct ConfigIndex {
    inner: Mutex<Inner>,
}

impl ConfigIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records which objects an app references now (replacing what it referenced).
    /// Digests of objects it still references are kept.
    pub fn record(&self, ns: &str, app: &str, keys: Vec<Key>) {
        let mut inner = self.lock();
        let id = (ns.to_string(), app.to_string());
        for old in inner.by_app.remove(&id).unwrap_or_default() {
            if keys.contains(&old) {
                continue;
            }
            if let Some(users) = inner.users.get_mut(&old) {
                users.remove(app);
                if users.is_empty() {
                    inner.users.remove(&old);
                    inner.digests.remove(&old);
                    inner.epochs.remove(&old);
                }
            }
        }
        for key in &keys {
            inner
                .users
                .entry(key.clone())
                .or_default()
                .insert(app.to_string());
        }
        inner.by_app.insert(id, keys);
    }

    /// A watch saw `key` at `resource_version` (None: deleted). Returns the apps to
    /// reconcile: those referencing it, when their digest may be stale.
    pub fn observed(&self, key: &Key, resource_version: Option<&str>) -> Vec<String> {
        let mut inner = self.lock();
        let Some(users) = inner.users.get(key).cloned() else {
            return Vec::new();
        };
        *inner.epochs.entry(key.clone()).or_default() += 1;
        let current = inner.digests.get(key).map(|(rv, _)| rv.clone());
        if current.as_ref().map(Option::as_deref) == Some(resource_version) {
            return Vec::new();
        }
        inner.digests.remove(key);
        users.into_iter().collect()
    }

    fn cached(&self, key: &Key) -> Option<Option<String>> {
        self.lock().digests.get(key).map(|(_, d)| d.clone())
    }

    fn epoch(&self, key: &Key) -> u64 {
        self.lock().epochs.get(key).copied().unwrap_or_default()
    }

    /// Keeps a digest read at `epoch`, unless a watch event came since (then the next
    /// reconcile, which that event triggered, reads again).
    fn store(
        &self,
        key: Key,
        epoch: u64,
        resource_version: Option<String>,
        digest: Option<String>,
    ) {
        let mut inner = self.lock();
        let current = inner.epochs.get(&key).copied().unwrap_or_default();
        if inner.users.contains_key(&key) && current == epoch {
            inner.digests.insert(key, (resource_version, digest));
        }
    }

    /// Objects referenced by at least one app (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.lock().users.len()
    }
}

/// The config state of one app: records its references in the index, reads what the
/// index has no digest for, and hashes. Secrets count only when `secrets` is on.
pub async fn state(
    client: &Client,
    index: &ConfigIndex,
    secrets: bool,
    ns: &str,
    app: &str,
    refs: &[ConfigRef],
) -> Result<ConfigState, Error> {
    let tracked: Vec<&ConfigRef> = refs
        .iter()
        .filter(|r| secrets || r.kind == ConfigKind::ConfigMap)
        .collect();
    let keys: Vec<Key> = tracked
        .iter()
        .map(|r| (ns.to_string(), r.kind, r.name.clone()))
        .collect();
    index.record(ns, app, keys.clone());
    if tracked.is_empty() {
        return Ok(ConfigState::default());
    }
    let mut lines = String::new();
    let mut missing = Vec::new();
    for (r, key) in tracked.into_iter().zip(keys) {
        let digest = match index.cached(&key) {
            Some(d) => d,
            None => {
                let epoch = index.epoch(&key);
                let (rv, d) = read(client, ns, r).await?;
                index.store(key, epoch, rv, d.clone());
                d
            }
        };
        if digest.is_none() && !r.optional {
            missing.push(r.display());
        }
        lines.push_str(&format!(
            "{}={}\n",
            r.display(),
            digest.as_deref().unwrap_or("missing")
        ));
    }
    Ok(ConfigState {
        hash: Some(digest::sha256_hex(lines.as_bytes())),
        missing,
    })
}

/// Reads one object: its resourceVersion and the digest of its data (None: missing).
async fn read(
    client: &Client,
    ns: &str,
    r: &ConfigRef,
) -> Result<(Option<String>, Option<String>), Error> {
    let failed = |source| Error::ReadConfig {
        kind: r.kind.as_str(),
        name: r.name.clone(),
        source,
    };
    Ok(match r.kind {
        ConfigKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            api.get_opt(&r.name).await.map_err(failed)?.map(|cm| {
                let d = digest::of_json(&json!({"data": cm.data, "binaryData": cm.binary_data}));
                (cm.metadata.resource_version, d)
            })
        }
        ConfigKind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            api.get_opt(&r.name).await.map_err(failed)?.map(|s| {
                let d = digest::of_json(&json!({"data": s.data, "type": s.type_}));
                (s.metadata.resource_version, d)
            })
        }
    }
    .map_or((None, None), |(rv, d)| (rv, Some(d))))
}

/// Reconcile triggers from a metadata-only watch of ConfigMaps (and Secrets when
/// `secrets`): the apps referencing an object whose resourceVersion moved.
pub fn triggers(
    client: &Client,
    ns: Option<&str>,
    secrets: bool,
    index: Arc<ConfigIndex>,
) -> impl Stream<Item = ObjectRef<DeserializeGuard<SafeApp>>> + Send + 'static {
    let config_maps = watch_kind::<ConfigMap>(client, ns, ConfigKind::ConfigMap, index.clone());
    let secrets = if secrets {
        watch_kind::<Secret>(client, ns, ConfigKind::Secret, index).boxed()
    } else {
        futures::stream::empty().boxed()
    };
    futures::stream::select(config_maps.boxed(), secrets)
}

fn watch_kind<K>(
    client: &Client,
    ns: Option<&str>,
    kind: ConfigKind,
    index: Arc<ConfigIndex>,
) -> impl Stream<Item = ObjectRef<DeserializeGuard<SafeApp>>> + Send + 'static
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    // `Api<PartialObjectMeta<K>>` asks for metadata only: no data crosses the wire.
    let api: Api<PartialObjectMeta<K>> = super::api(client, ns);
    watcher(api, watcher::Config::default().any_semantic())
        .backoff(super::backoff::WatchBackoff::default())
        .filter_map(move |event| {
            let index = index.clone();
            async move {
                let (meta, deleted): (PartialObjectMeta<K>, bool) = match event.ok()? {
                    watcher::Event::Apply(m) | watcher::Event::InitApply(m) => (m, false),
                    watcher::Event::Delete(m) => (m, true),
                    _ => return None,
                };
                let ns = meta.namespace()?;
                let key = (ns.clone(), kind, meta.name_any());
                let rv = if deleted {
                    None
                } else {
                    meta.resource_version()
                };
                let apps = index.observed(&key, rv.as_deref());
                Some(futures::stream::iter(
                    apps.into_iter()
                        .map(move |app| ObjectRef::new(&app).within(&ns)),
                ))
            }
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("shop".into(), ConfigKind::ConfigMap, name.into())
    }

    // A watch event triggers the referencing apps only when the resourceVersion moved
    // past the one the digest was read at; unreferenced objects trigger nothing.
    #[test]
    fn events_trigger_only_referencing_apps_on_new_versions() {
        let index = ConfigIndex::default();
        index.record("shop", "web", vec![key("app-config")]);
        index.record("shop", "api", vec![key("app-config"), key("flags")]);
        index.store(key("app-config"), 0, Some("5".into()), Some("d1".into()));
        assert!(index.observed(&key("app-config"), Some("5")).is_empty());
        assert_eq!(
            index.observed(&key("app-config"), Some("6")),
            vec!["api".to_string(), "web".to_string()]
        );
        assert_eq!(index.cached(&key("app-config")), None, "digest dropped");
        assert!(index.observed(&key("other"), Some("1")).is_empty());
        // Deleted: the apps are triggered (they will report it missing).
        index.store(key("flags"), 0, Some("2".into()), Some("d2".into()));
        assert_eq!(index.observed(&key("flags"), None), vec!["api".to_string()]);
        // An app that stops referencing an object is no longer triggered by it.
        index.record("shop", "web", vec![]);
        index.store(
            key("app-config"),
            index.epoch(&key("app-config")),
            Some("7".into()),
            Some("d3".into()),
        );
        assert_eq!(
            index.observed(&key("app-config"), Some("8")),
            vec!["api".to_string()]
        );
        index.record("shop", "api", vec![]);
        assert_eq!(index.tracked(), 0);
    }

    // A digest survives the app recording the same references again (no GET per
    // reconcile), and one read before a watch event is not kept after it.
    #[test]
    fn digests_survive_and_stale_reads_are_dropped() {
        let index = ConfigIndex::default();
        index.record("shop", "web", vec![key("c")]);
        index.store(key("c"), 0, Some("1".into()), Some("d1".into()));
        index.record("shop", "web", vec![key("c")]);
        assert_eq!(index.cached(&key("c")), Some(Some("d1".into())));
        let epoch = index.epoch(&key("c"));
        assert_eq!(index.observed(&key("c"), Some("2")), ["web"]);
        index.store(key("c"), epoch, Some("1".into()), Some("stale".into()));
        assert_eq!(
            index.cached(&key("c")),
            None,
            "read before the event: not kept"
        );
    }
}
