//! Both sides of an access rule, visible: when a SafeApp's rule names another SafeApp,
//! whether that app declares the matching rule on its side (the callee's inbound for
//! an outbound rule, the caller's outbound for an inbound rule). Reported as the
//! condition `AccessPoliciesMatched`, so "why can't A call B?" is answered by
//! `kubectl get sapp -o yaml`. Only SafeApps the operator watches are considered; a
//! name that matches none is reported, not an error.
//!
//! When an app's rules change, the apps its old and new rules name, and the apps whose
//! rules name it, are reconciled again so their reports follow.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;

use crate::api::SafeApp;
use crate::api::v1alpha1::AccessRule;
use crate::controller::conditions::{self as c, Cond};

/// `namespace/name` of a SafeApp.
pub type AppKey = (String, String);

fn target(rule: &AccessRule, own_ns: &str) -> Option<AppKey> {
    let app = rule.app.as_ref()?;
    Some((
        rule.namespace.clone().unwrap_or_else(|| own_ns.to_string()),
        app.clone(),
    ))
}

/// Whether `rule` (of an app in `rule_owner_ns`) lets the app `other` through.
fn admits(rule: &AccessRule, rule_owner_ns: &str, other: &AppKey) -> bool {
    match (&rule.app, &rule.namespace, &rule.cidr) {
        (Some(app), ns, _) => *app == other.1 && ns.as_deref().unwrap_or(rule_owner_ns) == other.0,
        (None, Some(ns), None) => *ns == other.0,
        _ => false,
    }
}

/// Every SafeApp that `app`'s rules name, inbound and outbound.
pub fn named(app: &SafeApp) -> BTreeSet<AppKey> {
    let ns = app.namespace().unwrap_or_default();
    let Some(policy) = &app.spec.access_policy else {
        return BTreeSet::new();
    };
    policy
        .inbound
        .iter()
        .chain(policy.outbound.iter())
        .flatten()
        .filter_map(|r| target(r, &ns))
        .collect()
}

/// What the policy enforces, for the report: whether the caller's outbound side
/// matters (egress control), and whether a same-namespace caller is admitted anyway.
#[derive(Clone, Copy, Debug, Default)]
pub struct Enforced {
    pub egress: bool,
    pub same_namespace: bool,
}

/// The `AccessPoliciesMatched` condition of `app`, given the SafeApps its rules name
/// (`peers`, those that exist); None when its rules name no app. A side the policy does
/// not enforce (the caller's outbound rules without egress control; a callee's inbound
/// rules for a same-namespace caller with `allowSameNamespace`) is not required.
pub fn reciprocity(app: &SafeApp, peers: &[SafeApp], enforced: Enforced) -> Option<Cond> {
    let ns = app.namespace().unwrap_or_default();
    let me: AppKey = (ns.clone(), app.name_any());
    let policy = app.spec.access_policy.as_ref()?;
    let find = |key: &AppKey| {
        peers
            .iter()
            .find(|a| a.namespace().as_deref() == Some(key.0.as_str()) && a.name_any() == key.1)
    };
    let mut checked = 0;
    let mut missing = Vec::new();
    let sides = [
        ("outbound", &policy.outbound, "inbound caller"),
        ("inbound", &policy.inbound, "outbound destination"),
    ];
    for (side, rules, other_side) in sides {
        for (i, rule) in rules.iter().flatten().enumerate() {
            let Some(key) = target(rule, &ns) else {
                continue;
            };
            checked += 1;
            let Some(peer) = find(&key) else {
                missing.push(format!(
                    "{side}[{i}]: no SafeApp {} in namespace {}",
                    key.1, key.0
                ));
                continue;
            };
            let not_enforced = if side == "outbound" {
                enforced.same_namespace && key.0 == me.0
            } else {
                !enforced.egress
            };
            if not_enforced {
                continue;
            }
            let peer_policy = peer.spec.access_policy.clone().unwrap_or_default();
            let peer_rules = if side == "outbound" {
                &peer_policy.inbound
            } else {
                &peer_policy.outbound
            };
            if !peer_rules.iter().flatten().any(|r| admits(r, &key.0, &me)) {
                missing.push(format!(
                    "{side}[{i}]: {} (namespace {}) does not list {} as an {other_side}",
                    key.1, key.0, me.1
                ));
            }
        }
    }
    if checked == 0 {
        return None;
    }
    Some(if missing.is_empty() {
        Cond::new(
            c::ACCESS_POLICIES_MATCHED,
            true,
            c::REASON_MATCHED,
            "every app named in spec.accessPolicy declares the matching rule",
        )
    } else {
        Cond::new(
            c::ACCESS_POLICIES_MATCHED,
            false,
            c::REASON_MISSING_RULES,
            crate::controller::events::bounded_list(&missing, 1024),
        )
    })
}

/// Each app's access rules as last seen.
#[derive(Default)]
pub struct AccessIndex {
    seen: Mutex<HashMap<AppKey, Option<String>>>,
}

impl AccessIndex {
    /// Whether `app`'s rules differ from those last seen (false the first time: every
    /// app is reconciled at start anyway). Records them.
    pub fn rules_changed(
        &self,
        app: &SafeApp,
    ) -> Option<Option<crate::api::v1alpha1::AccessPolicy>> {
        let key: AppKey = (app.namespace().unwrap_or_default(), app.name_any());
        let rules = app
            .spec
            .access_policy
            .as_ref()
            .map(|p| serde_json::to_string(p).unwrap_or_default());
        let previous = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.insert(key, rules.clone())
        }?;
        (previous != rules).then(|| previous.and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// The apps to reconcile again because `app`'s rules changed from `old`: those its
    /// old and current rules name, and those among `known` whose rules name it.
    pub fn peers_of_change(
        app: &SafeApp,
        old: Option<crate::api::v1alpha1::AccessPolicy>,
        known: &[SafeApp],
    ) -> BTreeSet<AppKey> {
        let key: AppKey = (app.namespace().unwrap_or_default(), app.name_any());
        let mut out = named(app);
        if let Some(old) = old {
            let mut old_app = app.clone();
            old_app.spec.access_policy = Some(old);
            out.extend(named(&old_app));
        }
        out.extend(
            known
                .iter()
                .filter(|a| named(a).contains(&key))
                .map(|a| (a.namespace().unwrap_or_default(), a.name_any())),
        );
        out.remove(&key);
        out
    }

    #[cfg(test)]
    fn changed(&self, app: &SafeApp, known: &[SafeApp]) -> BTreeSet<AppKey> {
        match self.rules_changed(app) {
            Some(old) => Self::peers_of_change(app, old, known),
            None => BTreeSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(ns: &str, name: &str, access: serde_json::Value) -> SafeApp {
        serde_json::from_value(json!({
            "apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"image": "x:1", "accessPolicy": access}
        }))
        .unwrap()
    }

    // A rule naming another app is matched by that app's rule on the other side (by
    // app, or by the whole namespace); a missing side and an unknown app are named.
    #[test]
    fn both_sides() {
        let egress = Enforced {
            egress: true,
            same_namespace: false,
        };
        let web = app(
            "shop",
            "web",
            json!({"outbound": [{"app": "api"}, {"app": "db", "namespace": "data"}, {"app": "ghost"}]}),
        );
        let api = app("shop", "api", json!({"inbound": [{"app": "web"}]}));
        let db = app("data", "db", json!({"inbound": [{"namespace": "other"}]}));
        let known = vec![web.clone(), api.clone(), db.clone()];
        let cond = reciprocity(&web, &known, egress).unwrap();
        assert!(!cond.status);
        assert!(!cond.message.contains("outbound[0]"), "{}", cond.message);
        assert!(
            cond.message.contains(
                "outbound[1]: db (namespace data) does not list web as an inbound caller"
            ),
            "{}",
            cond.message
        );
        assert!(
            cond.message
                .contains("outbound[2]: no SafeApp ghost in namespace shop"),
            "{}",
            cond.message
        );
        // api's inbound rule from web: web declares the outbound side.
        assert!(reciprocity(&api, &known, egress).unwrap().status);
        // db admits the namespace "shop" now: matched.
        let db = app("data", "db", json!({"inbound": [{"namespace": "shop"}]}));
        let web2 = app(
            "shop",
            "web",
            json!({"outbound": [{"app": "db", "namespace": "data"}]}),
        );
        assert!(
            reciprocity(&web2, &[web2.clone(), db], egress)
                .unwrap()
                .status
        );
        // No app named: no condition.
        assert!(
            reciprocity(
                &app("shop", "x", json!({"outbound": [{"cidr": "10.0.0.0/8"}]})),
                &[],
                egress
            )
            .is_none()
        );
        // Without egress control, an inbound rule needs nothing from the caller; with
        // allowSameNamespace, a same-namespace callee admits the caller anyway.
        let lone_api = app("shop", "api", json!({"inbound": [{"app": "quiet"}]}));
        let quiet = app("shop", "quiet", json!({}));
        let peers = std::slice::from_ref(&quiet);
        assert!(
            reciprocity(&lone_api, peers, Enforced::default())
                .unwrap()
                .status
        );
        assert!(!reciprocity(&lone_api, peers, egress).unwrap().status);
        let caller = app("shop", "c", json!({"outbound": [{"app": "open"}]}));
        let open = app("shop", "open", json!({}));
        let same_ns = Enforced {
            egress: false,
            same_namespace: true,
        };
        assert!(
            reciprocity(&caller, std::slice::from_ref(&open), same_ns)
                .unwrap()
                .status
        );
    }

    // A rule change re-checks the apps named before and after, and those naming it.
    #[test]
    fn changes_retrigger_peers() {
        let index = AccessIndex::default();
        let caller = app("shop", "caller", json!({"outbound": [{"app": "web"}]}));
        let v1 = app("shop", "web", json!({"inbound": [{"app": "a"}]}));
        assert!(
            index.changed(&v1, std::slice::from_ref(&caller)).is_empty(),
            "first sight"
        );
        assert!(
            index.changed(&v1, std::slice::from_ref(&caller)).is_empty(),
            "unchanged"
        );
        let v2 = app("shop", "web", json!({"inbound": [{"app": "b"}]}));
        let again: Vec<String> = index
            .changed(&v2, &[caller.clone(), v2.clone()])
            .into_iter()
            .map(|k| k.1)
            .collect();
        assert_eq!(again, ["a", "b", "caller"]);
    }
}
