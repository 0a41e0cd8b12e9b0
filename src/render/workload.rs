//! The workload: the one object of a SafeApp that runs its pods. Everything rendered
//! after it (Service, PDB, NetworkPolicy, routes) selects the same pods, and everything
//! the controller does to the template (the config hash, staged upgrades, replicas held
//! when autoscaling is turned off) goes through this type, never through a Deployment
//! directly, so a second workload kind is added here once.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{CONFIG_HASH_ANNOTATION, Object};
use crate::api::SafeAppSpec;

/// The object that runs a SafeApp's pods.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
}

/// Which kind of workload a SafeApp has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    StatefulSet,
}

impl Kind {
    /// The kind a SafeApp's spec asks for (valid or not: a paused app's status reads it).
    pub fn of(spec: &SafeAppSpec) -> Self {
        if spec.stateful.is_some() {
            Self::StatefulSet
        } else {
            Self::Deployment
        }
    }

    /// The kind, as the API names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
        }
    }

    /// Its apiVersion.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Deployment | Self::StatefulSet => "apps/v1",
        }
    }
}

impl Workload {
    /// Which kind it is.
    pub fn which(&self) -> Kind {
        match self {
            Self::Deployment(_) => Kind::Deployment,
            Self::StatefulSet(_) => Kind::StatefulSet,
        }
    }

    /// Its kind, as the API names it.
    pub fn kind(&self) -> &'static str {
        self.which().name()
    }

    /// Its apiVersion.
    pub fn api_version(&self) -> &'static str {
        self.which().api_version()
    }

    /// The Deployment, when it is one.
    pub fn as_deployment(&self) -> Option<&Deployment> {
        match self {
            Self::Deployment(d) => Some(d),
            Self::StatefulSet(_) => None,
        }
    }

    /// The StatefulSet, when it is one.
    pub fn as_stateful_set(&self) -> Option<&StatefulSet> {
        match self {
            Self::StatefulSet(s) => Some(s),
            Self::Deployment(_) => None,
        }
    }

    /// The pod template.
    pub fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Self::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Self::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
        }
    }

    fn template_mut(&mut self) -> Option<&mut PodTemplateSpec> {
        match self {
            Self::Deployment(d) => d.spec.as_mut().map(|s| &mut s.template),
            Self::StatefulSet(s) => s.spec.as_mut().map(|s| &mut s.template),
        }
    }

    /// The replica count it sets (None: an autoscaler owns it).
    pub fn replicas(&self) -> Option<i32> {
        match self {
            Self::Deployment(d) => d.spec.as_ref().and_then(|s| s.replicas),
            Self::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.replicas),
        }
    }

    /// Sets the replica count (the count held when autoscaling was turned off).
    pub fn set_replicas(&mut self, count: i32) {
        match self {
            Self::Deployment(d) => {
                if let Some(spec) = d.spec.as_mut() {
                    spec.replicas = Some(count);
                }
            }
            Self::StatefulSet(s) => {
                if let Some(spec) = s.spec.as_mut() {
                    spec.replicas = Some(count);
                }
            }
        }
    }

    /// Holds a new template back: applied, but not rolled out. A Deployment is paused;
    /// a StatefulSet (which has no pause) gets a partition at its replica count, so no
    /// pod is updated until the partition is lowered again.
    pub fn hold(&mut self) {
        match self {
            Self::Deployment(d) => {
                if let Some(spec) = d.spec.as_mut() {
                    spec.paused = Some(true);
                }
            }
            Self::StatefulSet(s) => {
                if let Some(spec) = s.spec.as_mut() {
                    let replicas = spec.replicas.unwrap_or(1);
                    if let Some(ru) = spec
                        .update_strategy
                        .as_mut()
                        .and_then(|u| u.rolling_update.as_mut())
                    {
                        ru.partition = Some(replicas.max(ru.partition.unwrap_or(0)));
                    }
                }
            }
        }
    }

    /// Keeps the pod template the workload runs (a canary release holds the stable
    /// Deployment's while the new one runs beside it).
    pub fn keep_template(&mut self, template: PodTemplateSpec) {
        if let Some(t) = self.template_mut() {
            *t = template;
        }
    }

    /// Stamps the config-data hash on the pod template (the controller computes it;
    /// `render` without a cluster has none).
    pub fn set_config_hash(&mut self, hash: &str) {
        let Some(template) = self.template_mut() else {
            return;
        };
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CONFIG_HASH_ANNOTATION.into(), hash.into());
    }

    /// Hash of the pod template as rendered: what staged upgrades compare.
    pub fn template_hash(&self) -> String {
        crate::digest::of_json(&self.template())
    }

    /// The object to print or apply.
    pub fn into_object(self) -> Object {
        match self {
            Self::Deployment(d) => Object::Deployment(d),
            Self::StatefulSet(s) => Object::StatefulSet(s),
        }
    }
}
