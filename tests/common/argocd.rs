//! Runs the Argo CD health checks of `config/argocd/` in a real Lua 5.1 (the dialect of
//! Argo CD's gopher-lua), the way Argo CD does: the resource as the global `obj`, the
//! script as one chunk, its returned table's `status` and `message` as the health.

use std::path::{Path, PathBuf};

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt, Table};
use serde::Deserialize;

/// The health statuses Argo CD knows; a script returning anything else is a bug.
#[allow(dead_code)]
pub const STATUSES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

/// The path of the health check of `kind` ("SafeApp" or "SafeJob").
#[allow(dead_code)]
pub fn script_path(kind: &str) -> PathBuf {
    let file = match kind {
        "SafeApp" => "health-safeapp.lua",
        "SafeJob" => "health-safejob.lua",
        other => panic!("no Argo CD health check for kind {other:?}"),
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/argocd")
        .join(file)
}

/// The `(status, message)` Argo CD shows for `obj`, a resource of `kind` as JSON.
///
/// The object reaches Lua as Argo CD's converter (gopher-json's `DecodeValue`, into
/// gopher-lua) leaves it: a null field is nil (absent), a null array element is dropped
/// (`LTable.Append` skips nil), and arrays are plain 1-based sequences that `ipairs`
/// walks. Panics when the script fails or returns a status Argo CD does not know.
#[allow(dead_code)]
pub fn health(kind: &str, obj: &serde_json::Value) -> (String, String) {
    let path = script_path(kind);
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let lua = Lua::new();
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false)
        .set_array_metatable(false);
    let value = lua
        .to_value_with(&without_null_elements(obj), options)
        .expect("the object as a Lua value");
    lua.globals().set("obj", value).expect("set global obj");
    let hs: Table = lua
        .load(source.as_str())
        .set_name(format!("@{}", path.display()))
        .eval()
        .unwrap_or_else(|e| panic!("{} failed on {obj}: {e}", path.display()));
    let status: Option<String> = hs.get("status").expect("hs.status is a string or nil");
    let message: Option<String> = hs.get("message").expect("hs.message is a string or nil");
    let status = status.unwrap_or_default();
    assert!(
        STATUSES.contains(&status.as_str()),
        "{} returned status {status:?}, which Argo CD does not know, for {obj}",
        path.display()
    );
    // Argo CD reads a missing message as "".
    (status, message.unwrap_or_default())
}

/// `value` with the null elements of its arrays removed, at every depth.
fn without_null_elements(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::Array(items) => J::Array(
            items
                .iter()
                .filter(|v| !v.is_null())
                .map(without_null_elements)
                .collect(),
        ),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), without_null_elements(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Argo CD's `health_test.yaml`: `tests: [{healthStatus: {status, message}, inputPath}]`.
#[derive(Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthTest {
    health_status: HealthStatus,
    input_path: String,
}

#[derive(Deserialize)]
struct HealthStatus {
    status: String,
    #[serde(default)]
    message: String,
}

/// Runs every case of a file in the shape of Argo CD's `health_test.yaml` (each
/// `inputPath` relative to the file's folder; the script is chosen by the input's
/// `kind`), panics listing every case whose status or message differs, and returns the
/// number of cases checked.
#[allow(dead_code)]
pub fn check_health_test_yaml(path: impl AsRef<Path>) -> usize {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let file: HealthTests = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a health_test.yaml: {e}", path.display()));
    assert!(!file.tests.is_empty(), "{} has no tests", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut failures = Vec::new();
    for case in &file.tests {
        let input = dir.join(&case.input_path);
        let text = std::fs::read_to_string(&input)
            .unwrap_or_else(|e| panic!("reading {}: {e}", input.display()));
        let obj: serde_json::Value = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a YAML object: {e}", input.display()));
        let kind = obj["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no kind", input.display()));
        let got = health(kind, &obj);
        let want = &case.health_status;
        if got.0 != want.status || got.1 != want.message {
            failures.push(format!(
                "{}: want {} {:?}, got {} {:?}",
                case.input_path, want.status, want.message, got.0, got.1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {} cases differ:\n{}",
        path.display(),
        failures.len(),
        file.tests.len(),
        failures.join("\n")
    );
    file.tests.len()
}
