//! The SafeApp a reconcile works on: where it lives, who it is, when the reconcile
//! started, and the status it was read with. Every step takes it; it takes nothing from
//! the steps.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::SafeAppStatus;
use crate::controller::Context;
use crate::controller::apply::SyncCtx;

/// The SafeApp being reconciled: where, who, when, and the status it was read with.
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: Option<i64>,
    pub now: Time,
    pub previous: SafeAppStatus,
}

impl Target {
    /// `namespace/name`: the app's key in the upgrade queue.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub(super) fn sync_ctx<'a>(
        &'a self,
        ctx: &'a Context,
        previously: &'a [String],
        caches: Option<&'a crate::controller::cache::Caches>,
    ) -> SyncCtx<'a> {
        SyncCtx {
            spec_changed: self.previous.observed_generation != self.generation,
            previously_managed: previously,
            ..SyncCtx::new(ctx, &self.namespace, caches)
        }
    }
}
