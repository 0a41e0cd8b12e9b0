//! Reading SafeApp manifests (one or many YAML documents) for `safeapp render`, and
//! turning them into printable objects or a list of problems.
//!
//! The API server rejects unknown fields on apply; with no server here, this module
//! does it itself (via `serde_ignored`) and names each one.

use serde::Deserialize;

use crate::api::{GROUP, SafeApp};
use crate::policy::Policy;
use crate::render::{self, Object};
use crate::validate::{self, ValidatedApp};

const API_VERSION: &str = "safeapp.dev/v1alpha1";

/// The result of rendering a manifest: the objects, and warnings that do not stop it.
#[derive(Debug)]
pub struct Rendered {
    pub objects: Vec<Object>,
    pub warnings: Vec<String>,
}

/// Parses every document of `text` into SafeApps. Each problem names its document
/// (`document 2 (shop/web)`) and its field path.
pub fn parse(text: &str) -> Result<Vec<SafeApp>, Vec<String>> {
    let mut apps = Vec::new();
    let mut problems = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let value = match serde_yaml_ng::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("document {n}: not valid YAML: {e}"));
                // A syntax error leaves the stream in an unknown state: stop here.
                break;
            }
        };
        if value.is_null() {
            continue; // empty document, e.g. a trailing `---`
        }
        match parse_one(value) {
            Ok(app) => apps.push(app),
            Err(errs) => problems.extend(errs.into_iter().map(|e| format!("document {n}: {e}"))),
        }
    }
    if problems.is_empty() {
        Ok(apps)
    } else {
        Err(problems)
    }
}

fn parse_one(value: serde_yaml_ng::Value) -> Result<SafeApp, Vec<String>> {
    if !value.is_mapping() {
        return Err(vec![
            "not a Kubernetes object (expected a mapping with apiVersion and kind)".into(),
        ]);
    }
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    if kind != "SafeApp" || api_version.split('/').next() != Some(GROUP) {
        return Err(vec![format!(
            "apiVersion {api_version:?}, kind {kind:?} is not a SafeApp (expected apiVersion {API_VERSION}, kind SafeApp)"
        )]);
    }
    if api_version != API_VERSION {
        return Err(vec![format!(
            "apiVersion {api_version:?} is not served; use {API_VERSION}"
        )]);
    }
    let mut unknown = Vec::new();
    let parsed: Result<SafeApp, _> = serde_ignored::deserialize(value, |path| {
        unknown.push(format_path(&path));
    });
    let app = parsed.map_err(|e| vec![format!("{e}")])?;
    let unknown: Vec<String> = unknown
        .into_iter()
        // apiVersion and kind were checked above; status is the controller's.
        .filter(|p| !matches!(p.as_str(), "apiVersion" | "kind" | "status"))
        .filter(|p| !p.starts_with("status.") && !p.starts_with("status["))
        .map(|p| format!("{p}: unknown field"))
        .collect();
    if unknown.is_empty() {
        Ok(app)
    } else {
        Err(unknown)
    }
}

/// `spec.ports[0].nmae` style paths.
fn format_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", format_path(parent)),
        Path::Map { parent, key } => {
            let p = format_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => format_path(parent),
    }
}

fn describe(app: &SafeApp) -> String {
    let name = app.metadata.name.as_deref().unwrap_or("<no name>");
    match app.metadata.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Parses, validates and renders a manifest. Any problem in any document means no
/// output at all: a preview that silently drops an app would mislead.
pub fn render_manifest(text: &str, policy: &Policy) -> Result<Rendered, Vec<String>> {
    let apps = parse(text)?;
    if apps.is_empty() {
        return Err(vec!["no SafeApp found in the input".into()]);
    }
    let mut validated: Vec<ValidatedApp> = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, app) in apps.iter().enumerate() {
        let who = format!("document {} ({})", i + 1, describe(app));
        if !seen.insert((app.metadata.namespace.clone(), app.metadata.name.clone())) {
            problems.push(format!(
                "{who}: metadata.name: a SafeApp of this name appears twice"
            ));
        }
        match validate::validate(app, policy) {
            Ok(v) => validated.push(v),
            Err(errs) => problems.extend(errs.into_iter().map(|e| format!("{who}: {e}"))),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let warnings = validated
        .iter()
        .flat_map(|v| {
            render::out_of_range(v, policy)
                .into_iter()
                .map(move |w| format!("{}: {w} (admission will refuse its pods)", v.name))
        })
        .collect();
    Ok(Rendered {
        objects: render::render_all(&validated, policy),
        warnings,
    })
}
