//! The CRD manifest: generated from the Rust types, printed by `safeapp crd`.

use kube::CustomResourceExt;

use crate::api::SafeApp;

/// The CRD as YAML, exactly as checked in at `crds/safeapp.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&SafeApp::crd())
}
