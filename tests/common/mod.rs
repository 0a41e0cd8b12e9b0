//! Shared test helpers.

use safeapp::api::SafeApp;

/// Parses `base` (a SafeApp manifest) and merges the YAML mapping `extra` into its spec:
/// keys with a null value are removed, the others replace the base's.
pub fn app_with(base: &str, extra: &str) -> SafeApp {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(base).expect("base manifest");
    if !extra.trim().is_empty() {
        let patch: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(extra).expect("patch mapping");
        let spec = value["spec"].as_mapping_mut().expect("spec mapping");
        for (k, v) in patch {
            if v.is_null() {
                spec.remove(&k);
            } else {
                spec.insert(k, v);
            }
        }
    }
    serde_yaml_ng::from_value(value).expect("a SafeApp")
}
