//! Reading SafeApp manifests (one or many YAML documents) for `safeapp render`, and
//! turning them into printable objects or a list of problems.
//!
//! The API server rejects unknown fields on apply; with no server here, this module
//! does it itself and names each one: the spec against the CRD's own schema (the pod
//! fields are flattened into it, which serde alone cannot see through), the metadata
//! against its Rust type (via `serde_ignored`).

use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::api::{GROUP, SafeApp, SafeJob};
use crate::policy::Policy;
use crate::render::{self, Object};
use crate::validate::{self, ValidatedApp, ValidatedJob};

const API_VERSION: &str = "safeapp.dev/v1alpha1";

/// The result of rendering a manifest: the objects, and warnings that do not stop it.
#[derive(Debug)]
pub struct Rendered {
    pub objects: Vec<Object>,
    pub warnings: Vec<String>,
}

/// One document of a manifest.
#[derive(Clone, Debug)]
pub enum Document {
    App(Box<SafeApp>),
    Job(Box<SafeJob>),
}

/// Parses every document of `text` into SafeApps and SafeJobs. Each problem names its
/// document (`document 2 (shop/web)`) and its field path.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, Vec<String>> {
    let mut docs = Vec::new();
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
            Ok(d) => docs.push(d),
            Err(errs) => problems.extend(errs.into_iter().map(|e| format!("document {n}: {e}"))),
        }
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// Parses every document of `text` into SafeApps; a SafeJob is a problem here (for
/// commands that handle SafeApps only).
pub fn parse(text: &str) -> Result<Vec<SafeApp>, Vec<String>> {
    let mut apps = Vec::new();
    let mut problems = Vec::new();
    for (i, doc) in parse_documents(text)?.into_iter().enumerate() {
        match doc {
            Document::App(app) => apps.push(*app),
            Document::Job(job) => problems.push(format!(
                "document {} ({}): a SafeJob; this command handles SafeApps only",
                i + 1,
                describe(&job.metadata)
            )),
        }
    }
    if problems.is_empty() {
        Ok(apps)
    } else {
        Err(problems)
    }
}

fn parse_one(value: serde_yaml_ng::Value) -> Result<Document, Vec<String>> {
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
    if !matches!(kind, "SafeApp" | "SafeJob") || api_version.split('/').next() != Some(GROUP) {
        return Err(vec![format!(
            "apiVersion {api_version:?}, kind {kind:?} is not a SafeApp or SafeJob (expected apiVersion {API_VERSION}, kind SafeApp or SafeJob)"
        )]);
    }
    if api_version != API_VERSION {
        return Err(vec![format!(
            "apiVersion {api_version:?} is not served; use {API_VERSION}"
        )]);
    }
    let json = serde_json::to_value(&value).map_err(|e| vec![format!("{e}")])?;
    let mut unknown = unknown_fields(&json, kind);
    if let Some(meta) = value.get("metadata") {
        let parsed: Result<ObjectMeta, _> = serde_ignored::deserialize(meta.clone(), |path| {
            unknown.push(format!("metadata.{}", format_path(&path)));
        });
        parsed.map_err(|e| vec![format!("metadata: {e}")])?;
    }
    if !unknown.is_empty() {
        return Err(unknown
            .into_iter()
            .map(|p| format!("{p}: unknown field"))
            .collect());
    }
    let doc = if kind == "SafeApp" {
        serde_json::from_value(json).map(|a| Document::App(Box::new(a)))
    } else {
        serde_json::from_value(json).map(|j| Document::Job(Box::new(j)))
    };
    doc.map_err(|e| vec![format!("{e}")])
}

/// The fields of `object` (a SafeApp or SafeJob as JSON) that its CRD's schema does not
/// have, as the API server's strict field validation finds them: through `properties`,
/// list `items` and map values. `metadata` is checked by its Rust type instead (the CRD
/// leaves it open) and `status` is the controller's.
fn unknown_fields(object: &serde_json::Value, kind: &str) -> Vec<String> {
    static SCHEMAS: OnceLock<[JSONSchemaProps; 2]> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        crate::crd::crds().map(|crd| {
            crd.spec
                .versions
                .into_iter()
                .next()
                .and_then(|v| v.schema)
                .and_then(|s| s.open_api_v3_schema)
                .unwrap_or_default()
        })
    });
    let schema = if kind == "SafeApp" {
        &schemas[0]
    } else {
        &schemas[1]
    };
    let mut out = Vec::new();
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" | "metadata" | "status" => {}
                _ => match schema.properties.as_ref().and_then(|p| p.get(key)) {
                    Some(node) => unknown_under(value, node, key, &mut out),
                    None => out.push(key.clone()),
                },
            }
        }
    }
    out
}

fn unknown_under(
    value: &serde_json::Value,
    node: &JSONSchemaProps,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    if node.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    match value {
        Value::Object(map) => {
            let values = match &node.additional_properties {
                Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_ref()),
                _ => None,
            };
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                match (node.properties.as_ref().and_then(|p| p.get(key)), values) {
                    (Some(s), _) | (None, Some(s)) => unknown_under(child, s, &child_path, out),
                    (None, None) if node.properties.is_some() => out.push(child_path),
                    (None, None) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(s)) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    unknown_under(item, s, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
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

fn describe(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("<no name>");
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Parses, validates and renders a manifest of SafeApps and SafeJobs (one stream). Any
/// problem in any document means no output at all: a preview that silently drops an
/// app would mislead.
pub fn render_manifest(text: &str, policy: &Policy) -> Result<Rendered, Vec<String>> {
    let docs = parse_documents(text)?;
    if docs.is_empty() {
        return Err(vec!["no SafeApp or SafeJob found in the input".into()]);
    }
    let mut apps: Vec<ValidatedApp> = Vec::new();
    let mut jobs: Vec<ValidatedJob> = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, doc) in docs.iter().enumerate() {
        let (kind, meta) = match doc {
            Document::App(a) => ("SafeApp", &a.metadata),
            Document::Job(j) => ("SafeJob", &j.metadata),
        };
        let who = format!("document {} ({})", i + 1, describe(meta));
        if !seen.insert((kind, meta.namespace.clone(), meta.name.clone())) {
            problems.push(format!(
                "{who}: metadata.name: a {kind} of this name appears twice"
            ));
        }
        let result = match doc {
            Document::App(app) => validate::validate(app, policy).map(|v| apps.push(v)),
            Document::Job(job) => validate::validate_job(job, policy).map(|v| jobs.push(v)),
        };
        if let Err(errs) = result {
            problems.extend(errs.into_iter().map(|e| format!("{who}: {e}")));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let pods = apps
        .iter()
        .map(|a| &a.pod)
        .chain(jobs.iter().map(|j| &j.pod));
    let warnings = pods
        .flat_map(|pod| {
            render::out_of_range(pod, policy)
                .into_iter()
                .map(move |w| format!("{}: {w} (admission will refuse its pods)", pod.name))
        })
        .collect();
    Ok(Rendered {
        objects: render::render_stream(&apps, &jobs, policy),
        warnings,
    })
}
