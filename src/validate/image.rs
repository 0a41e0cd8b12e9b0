//! The image: pinned by a tag other than `latest` or by a digest; its version label.

use super::Problems;
use crate::names;

/// Checks that the image is pinned; returns the version label it yields.
pub(super) fn check_image(p: &mut Problems, image: &str) -> Option<String> {
    const PATH: &str = "spec.image";
    if image.is_empty() {
        p.add(PATH, "required");
        return None;
    }
    if image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.add(PATH, format!("{image:?} is not an image reference"));
        return None;
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name_tag.rsplit('/').next().unwrap_or(name_tag);
    let tag = last.split_once(':').map(|(_, t)| t);
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            p.add(
                PATH,
                format!("{image:?} has a malformed digest (expected @sha256:<64 hex>)"),
            );
            return None;
        }
    }
    if let Some(t) = tag {
        let valid = !t.is_empty()
            && t.len() <= 128
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.starts_with('_'))
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            p.add(PATH, format!("{image:?} has an invalid tag {t:?}"));
            return None;
        }
        if t == "latest" && digest.is_none() {
            p.add(
                PATH,
                "the tag 'latest' is not a pinned version; use a version tag or a digest",
            );
            return None;
        }
    }
    match (tag, digest) {
        (Some(t), _) => Some(names::sanitize_label_value(t)).filter(|v| !v.is_empty()),
        (None, Some(d)) => {
            let (alg, hex) = d.split_once(':').unwrap_or(("sha256", d));
            Some(names::sanitize_label_value(&format!(
                "{alg}-{}",
                &hex[..hex.len().min(12)]
            )))
        }
        (None, None) => {
            p.add(
                PATH,
                format!(
                    "{image:?} has no tag or digest; pin a version (name:1.2.3 or name@sha256:...)"
                ),
            );
            None
        }
    }
}

/// Registry credentials are Secret names.
pub(super) fn check_pull_secrets(p: &mut Problems, spec: &crate::api::pod::PodFields) {
    for (i, s) in spec.image_pull_secrets.iter().flatten().enumerate() {
        p.check(
            format!("spec.imagePullSecrets[{i}]"),
            names::check_dns1123_subdomain(s),
        );
    }
}
