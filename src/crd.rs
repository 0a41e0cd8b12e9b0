//! The CRD manifest: generated from the Rust types, printed by `safeapp crd`.
//!
//! # Bounded input
//!
//! Every list in the schema has `maxItems`, every free string `maxLength`, every map
//! `maxProperties`, so the API server refuses an oversized SafeApp with a message naming
//! the field, every CEL rule's cost estimate stays finite, and no status can grow past
//! what one request may carry. Our own fields carry their bounds on the Rust types
//! (`#[schemars(length(...))]`), but the CRD embeds core types (Container, Volume,
//! Affinity, Toleration, EnvVar, Probe, ResourceRequirements, HPA behavior, Condition…)
//! whose k8s-openapi schemas have none. [`safeapp_crd`] therefore walks the generated
//! `openAPIV3Schema` of every version (through `properties`, `items` and
//! `additionalProperties`, never into `allOf`/`anyOf`/`oneOf`/`not`) and adds the
//! missing bound to each node, keeping every bound already there (`ports` 32, port names
//! 15, image 512, label dimensions 63). Strings with an `enum` are bounded by it and
//! are left alone. It never adds a `type`.
//!
//! A bound is looked up by the end of the node's path (`.spec.env[].value`: `.` before a
//! property, `[]` for list items, `{}` for map values); the first entry of the table
//! whose suffix matches wins, otherwise the default applies:
//!
//! | kind | path ends with | bound | why |
//! |---|---|---|---|
//! | list | (default) | 64 | far above what a pod spec needs; keeps size and CEL cost finite |
//! | list | `.env` | 64 | 64 × 32 KiB values stay under the request limit; bulk settings belong in `envFrom` |
//! | list | `.initContainers` | 8 | each one is a whole Container |
//! | list | `.status.conditions` | 8 | Ready, Reconciling, Stalled, Degraded, UpgradePending, AccessPoliciesMatched, Exposed: 7, with room for one |
//! | list | `.status.managedObjects` | 16 | at most 6 kinds are generated today |
//! | list | `.status.lastDriftCorrection.fields` | 128 | the field paths of one correction |
//! | list | `.status.missingConfig` | 64 | as many as `configRefs` may name |
//! | string | (default) | 4096 | any name, path, key or host; far above Kubernetes' own limits |
//! | string | `.env[].value`, `.command[]`, `.args[]` (also probe and hook `exec.command[]`) | 32768 | payloads: an inline config value or `sh -c` script |
//! | string | `.annotations{}` | 32768 | annotation values can be payloads (JSON settings) |
//! | string | `.labels{}`, `.matchLabels{}`, `.nodeSelector{}` | 63 | a label value is at most 63 characters |
//! | string | `.initContainers[].name`, `.volumes[].name`, `.volumeMounts[].name`, `.volumeDevices[].name` | 63 | container and volume names are DNS labels |
//! | string | `Ref.name`, `KeyRef.key`, `.configMap.name`, `.secretName`, `.claimName`, `.serviceAccountName`, `.priorityClassName`, `.imagePullSecrets[]`, `.dependsOn[]`, `.managedObjects[].name`, `.lastDriftCorrection.name` | 253 | object names (and ConfigMap/Secret keys) are at most 253 characters |
//! | string | `format: date-time` (default) | 64 | RFC 3339 with nanoseconds and offset is 35 characters |
//! | string | `.status.conditions[].type` / `.reason` / `.message` | 316 / 1024 / 32768 | the bounds of `metav1.Condition` in Kubernetes' own APIs |
//! | string | `.status.conditions[].status` | 16 | True, False or Unknown |
//! | string | `.kind` | 63 | a kind is at most a DNS label's length |
//! | string | `.managedObjects[].apiVersion` | 317 | group (253) `/` version (63) |
//! | string | `.lastDriftCorrection.manager` | 128 | the API server's limit on a field manager name |
//! | string | `.status.lastDriftCorrection.fields[]` | 1024 | one field path |
//! | string | `.status.missingConfig[]` | 269 | `Kind/` and an object name |
//! | string | `.status.template.hash`, `.configHash` | 64 | hex SHA-256 |
//! | int-or-string | (all) | 64 | an integer, a percentage, a port name or a quantity |
//! | map | (default; `.labels`, `.annotations` explicitly) | 64 | far above any real label or annotation set |
//!
//! **Int-or-string.** A node with `x-kubernetes-int-or-string: true` has no `type`, and
//! here no `anyOf` either (k8s-openapi's schema for `IntOrString` and `Quantity` is just
//! the extension; the API server would also accept exactly `anyOf: [{type: integer},
//! {type: string}]`). The API server
//! (`k8s.io/apiextensions-apiserver/pkg/apiserver/schema/validation.go`) allows value
//! validations such as `maxLength` on the node itself: `validateStructuralInvariants`
//! only forbids generic fields (`type`, `description`, `nullable`, …) and extensions
//! inside `anyOf`/`allOf`/`oneOf`/`not`, and nothing in the CRD validation ties
//! `maxLength` to `type: string`. It does *not* allow one inside the `anyOf` branch: the
//! int-or-string exception is recognised only when the branches are exactly
//! `{type: integer}` and `{type: string}` (`isIntOrStringAnyOfPattern`, a
//! `reflect.DeepEqual`), so a `maxLength` there would make the branch's `type` "must be
//! empty to be structural". At validation time the string validator applies only to
//! string values (`stringValidator.Applies` in kube-openapi checks `kind ==
//! reflect.String`), so the node-level `maxLength` bounds the string form and leaves
//! integers alone. That is what this module does: `maxLength: 64` on the node, nothing
//! in any `anyOf`.
//!
//! **Map keys** cannot be bounded in length: Kubernetes' schema has no `propertyNames`;
//! only their number is (`maxProperties`). Label and annotation keys are checked by the
//! operator and `render`, and by the API server on every generated object.
//!
//! **Size arithmetic.** The status at its maximum is about 0.4 MiB of ASCII (8
//! conditions × ~33 KiB, 128 drift field paths × 1 KiB, 16 managed objects × ~0.7 KiB,
//! plus small fields), and 2.4 MiB even if every character were a 6-byte JSON escape
//! (`tests/crd.rs` computes it), so a status write can never exceed the API server's 3 MiB
//! request limit. Each of the spec's payload fields alone stays under it at its maximum:
//! `env` 64 × (4 KiB name + 32 KiB value) = 2.25 MiB; `command`, `args` 64 × 32 KiB =
//! 2 MiB each; `annotations` 64 × 32 KiB = 2 MiB (and the API server caps all
//! annotations of an object at 256 KiB anyway). Together, and through nesting, they do
//! not: bounds multiply (8 init containers × 64 env × 32 KiB is 16 MiB), and no useful
//! choice of bounds keeps the product of the embedded core types under 3 MiB. For the
//! object as a whole the request limit (3 MiB) and etcd's value limit (1.5 MiB by
//! default) stay the outer bound; what the schema guarantees is that no string exceeds
//! 32 KiB, no list 128 entries and no map 64 entries, each refused by the API server
//! with the field's path.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::api::{SafeApp, SafeJob};

/// A bound for the schema nodes whose path ends with `suffix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// End of the node's path: `.` before a property, `[]` for items, `{}` for map values.
    pub suffix: &'static str,
    /// The `maxItems`, `maxLength` or `maxProperties` to set.
    pub max: i64,
}

const fn b(suffix: &'static str, max: i64) -> Bound {
    Bound { suffix, max }
}

/// `maxItems` of a list no entry of [`MAX_ITEMS`] matches.
pub const DEFAULT_MAX_ITEMS: i64 = 64;
/// `maxLength` of a string no entry of [`MAX_LENGTH`] matches.
pub const DEFAULT_MAX_LENGTH: i64 = 4096;
/// `maxProperties` of a map no entry of [`MAX_PROPERTIES`] matches.
pub const DEFAULT_MAX_PROPERTIES: i64 = 64;
/// `maxLength` of an int-or-string node: an integer, a percentage, a port name or a
/// quantity.
pub const INT_OR_STRING_MAX_LENGTH: i64 = 64;
/// `maxLength` of a `format: date-time` string no entry of [`MAX_LENGTH`] matches: RFC
/// 3339 with nanoseconds and an offset is 35 characters.
pub const DATE_TIME_MAX_LENGTH: i64 = 64;
/// Strings that hold payloads: env values, command and args items, annotation values.
pub const PAYLOAD_MAX_LENGTH: i64 = 32 * 1024;
/// Object names (DNS subdomains) and ConfigMap/Secret keys.
pub const NAME_MAX_LENGTH: i64 = 253;
/// Label values, container and volume names (DNS labels).
pub const LABEL_MAX_LENGTH: i64 = 63;

/// `maxItems` by path suffix (see the module table for the reasons).
pub const MAX_ITEMS: &[Bound] = &[
    b(".status.conditions", 8),
    b(".status.managedObjects", 16),
    b(".status.lastDriftCorrection.fields", 128),
    b(".status.missingConfig", 64),
    b(".initContainers", 8),
    b(".env", 64),
];

/// `maxLength` by path suffix (see the module table for the reasons).
pub const MAX_LENGTH: &[Bound] = &[
    b(".status.conditions[].type", 316),
    b(".status.conditions[].reason", 1024),
    b(".status.conditions[].message", PAYLOAD_MAX_LENGTH),
    b(".status.conditions[].status", 16),
    b(".kind", LABEL_MAX_LENGTH),
    b(".managedObjects[].apiVersion", 317),
    b(".lastDriftCorrection.manager", 128),
    b(".status.lastDriftCorrection.fields[]", 1024),
    b(".status.lastDriftCorrection.name", NAME_MAX_LENGTH),
    b(".status.managedObjects[].name", NAME_MAX_LENGTH),
    b(".status.missingConfig[]", NAME_MAX_LENGTH + 16),
    b(".status.template.hash", 64),
    b(".status.template.configHash", 64),
    b(".env[].value", PAYLOAD_MAX_LENGTH),
    b(".command[]", PAYLOAD_MAX_LENGTH),
    b(".args[]", PAYLOAD_MAX_LENGTH),
    b(".annotations{}", PAYLOAD_MAX_LENGTH),
    b(".labels{}", LABEL_MAX_LENGTH),
    b(".matchLabels{}", LABEL_MAX_LENGTH),
    b(".nodeSelector{}", LABEL_MAX_LENGTH),
    b(".initContainers[].name", LABEL_MAX_LENGTH),
    b(".volumes[].name", LABEL_MAX_LENGTH),
    b(".volumeMounts[].name", LABEL_MAX_LENGTH),
    b(".volumeDevices[].name", LABEL_MAX_LENGTH),
    b("Ref.name", NAME_MAX_LENGTH),
    b("KeyRef.key", NAME_MAX_LENGTH),
    b(".configMap.name", NAME_MAX_LENGTH),
    b(".secretName", NAME_MAX_LENGTH),
    b(".claimName", NAME_MAX_LENGTH),
    b(".serviceAccountName", NAME_MAX_LENGTH),
    b(".priorityClassName", NAME_MAX_LENGTH),
    b(".imagePullSecrets[]", NAME_MAX_LENGTH),
    b(".dependsOn[]", NAME_MAX_LENGTH),
];

/// `maxProperties` by path suffix (see the module table for the reasons).
pub const MAX_PROPERTIES: &[Bound] = &[b(".labels", 64), b(".annotations", 64)];

/// The bound of the first entry of `table` whose suffix ends `path`, or `default`.
pub fn lookup(table: &[Bound], path: &str, default: i64) -> i64 {
    table
        .iter()
        .find(|b| path.ends_with(b.suffix))
        .map_or(default, |b| b.max)
}

/// The SafeApp CRD as applied to a cluster: `SafeApp::crd()` with every list, string
/// and map of every version's schema bounded (see the module docs).
pub fn safeapp_crd() -> CustomResourceDefinition {
    bounded(SafeApp::crd())
}

/// The SafeJob CRD, bounded the same way (its pod fields are SafeApp's, and so are
/// their bounds).
pub fn safejob_crd() -> CustomResourceDefinition {
    bounded(SafeJob::crd())
}

/// Both CRDs, SafeApp first.
pub fn crds() -> [CustomResourceDefinition; 2] {
    [safeapp_crd(), safejob_crd()]
}

fn bounded(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            bound(schema, "");
        }
    }
    crd
}

/// Adds the missing bound to `node` and everything under it; `path` names `node`.
fn bound(node: &mut JSONSchemaProps, path: &str) {
    let int_or_string = node.x_kubernetes_int_or_string == Some(true);
    match node.type_.as_deref() {
        Some("array") if node.max_items.is_none() => {
            node.max_items = Some(lookup(MAX_ITEMS, path, DEFAULT_MAX_ITEMS));
        }
        Some("string") if node.max_length.is_none() && node.enum_.is_none() => {
            let default = match node.format.as_deref() {
                Some("date-time") => DATE_TIME_MAX_LENGTH,
                _ => DEFAULT_MAX_LENGTH,
            };
            node.max_length = Some(lookup(MAX_LENGTH, path, default));
        }
        Some("object") if node.max_properties.is_none() && is_map(node) => {
            node.max_properties = Some(lookup(MAX_PROPERTIES, path, DEFAULT_MAX_PROPERTIES));
        }
        // On the node, never inside its anyOf (see "Int-or-string" above).
        None if int_or_string && node.max_length.is_none() => {
            node.max_length = Some(INT_OR_STRING_MAX_LENGTH);
        }
        _ => {}
    }
    if let Some(properties) = node.properties.as_mut() {
        for (name, child) in properties.iter_mut() {
            bound(child, &format!("{path}.{name}"));
        }
    }
    match node.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(items)) => bound(items, &format!("{path}[]")),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => {
            for items in list {
                bound(items, &format!("{path}[]"));
            }
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = node.additional_properties.as_mut() {
        bound(values, &format!("{path}{{}}"));
    }
}

/// An object whose keys are free: `additionalProperties` is a schema or `true`.
fn is_map(node: &JSONSchemaProps) -> bool {
    matches!(
        node.additional_properties,
        Some(JSONSchemaPropsOrBool::Schema(_)) | Some(JSONSchemaPropsOrBool::Bool(true))
    )
}

/// Both CRDs as one YAML stream: `crds/safeapp.yaml`, `---`, `crds/safejob.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let docs: Vec<String> = crds()
        .iter()
        .map(serde_yaml_ng::to_string)
        .collect::<Result<_, _>>()?;
    Ok(docs.join("---\n"))
}

/// One CRD as YAML, exactly as checked in at `crds/<plural without the s>.yaml`.
pub fn crd_yaml_of(crd: &CustomResourceDefinition) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(crd)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The first matching suffix wins, so specific entries come before general ones.
    #[test]
    fn lookup_prefers_the_first_match_and_falls_back_to_the_default() {
        assert_eq!(
            lookup(MAX_LENGTH, ".spec.env[].value", 1),
            PAYLOAD_MAX_LENGTH
        );
        assert_eq!(
            lookup(MAX_LENGTH, ".spec.probes.liveness.exec.command[]", 1),
            PAYLOAD_MAX_LENGTH
        );
        assert_eq!(
            lookup(MAX_LENGTH, ".status.conditions[].message", 1),
            PAYLOAD_MAX_LENGTH
        );
        assert_eq!(lookup(MAX_LENGTH, ".spec.env[].name", 1), 1);
        assert_eq!(lookup(MAX_ITEMS, ".spec.envFrom", 1), 1);
        assert_eq!(lookup(MAX_ITEMS, ".spec.initContainers[].env", 1), 64);
    }

    // A bound already on the Rust type is kept; the walk only fills gaps.
    #[test]
    fn existing_bounds_are_kept() {
        let mut node = JSONSchemaProps {
            type_: Some("array".into()),
            max_items: Some(32),
            items: Some(JSONSchemaPropsOrArray::Schema(Box::new(JSONSchemaProps {
                type_: Some("string".into()),
                max_length: Some(15),
                ..Default::default()
            }))),
            ..Default::default()
        };
        bound(&mut node, ".spec.env");
        assert_eq!(node.max_items, Some(32));
        let Some(JSONSchemaPropsOrArray::Schema(items)) = &node.items else {
            panic!("items")
        };
        assert_eq!(items.max_length, Some(15));
    }

    // An int-or-string node gets maxLength on itself and never a type; an anyOf is not
    // touched (a bound there would break the API server's int-or-string pattern).
    #[test]
    fn int_or_string_is_bounded_on_the_node_only() {
        let branch = |t: &str| JSONSchemaProps {
            type_: Some(t.into()),
            ..Default::default()
        };
        let mut node = JSONSchemaProps {
            x_kubernetes_int_or_string: Some(true),
            any_of: Some(vec![branch("integer"), branch("string")]),
            ..Default::default()
        };
        bound(&mut node, ".spec.rollout.maxSurge");
        assert_eq!(node.type_, None);
        assert_eq!(node.max_length, Some(INT_OR_STRING_MAX_LENGTH));
        assert_eq!(node.any_of, Some(vec![branch("integer"), branch("string")]));
    }
}
