//! Content hashes the operator records or stamps on objects (the config-data hash on
//! the pod template, the rendered template's hash in status): SHA-256, hex, over a
//! canonical serialization (serde_json writes maps in key order: every map we hash is a
//! BTreeMap or a JSON object built from one).

use ring::digest::{SHA256, digest};

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hex SHA-256 of a value's JSON form.
pub fn of_json<T: serde::Serialize>(value: &T) -> String {
    sha256_hex(&serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The known SHA-256 of "abc", so the hex form is the standard one.
    #[test]
    fn known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
