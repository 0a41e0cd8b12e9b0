//! Kubernetes name, label and annotation syntax checks, and label-value sanitising.

/// DNS-1123 label: lowercase alphanumerics and '-', at most 63, alphanumeric at both ends.
pub fn check_dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("{s:?} must be 1 to 63 characters"));
    }
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ends = is_lower_alnum(s.as_bytes()[0]) && is_lower_alnum(s.as_bytes()[s.len() - 1]);
    if !ok_chars || !ends {
        return Err(format!(
            "{s:?} must consist of lowercase letters, digits and '-', and start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
pub fn check_dns1035_label(s: &str) -> Result<(), String> {
    check_dns1123_label(s)?;
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(format!(
            "{s:?} must start with a lowercase letter (it names a Service)"
        ));
    }
    Ok(())
}

/// DNS-1123 subdomain: dot-separated DNS labels, at most 253 characters.
pub fn check_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!("{s:?} must be 1 to 253 characters"));
    }
    for part in s.split('.') {
        check_dns1123_label(part).map_err(|_| {
            format!(
                "{s:?} must be lowercase letters, digits, '-' and '.', alphanumeric at both ends"
            )
        })?;
    }
    Ok(())
}

/// IANA service name (container port names): at most 15 characters, lowercase
/// alphanumerics and '-', at least one letter, no leading, trailing or double '-'.
pub fn check_port_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an IANA service name: 1 to 15 lowercase letters, digits and '-', with at least one letter"
        ))
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Label value: empty, or at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub fn check_label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    let b = s.as_bytes();
    if s.len() > 63
        || !b.iter().all(|&c| is_label_char(c))
        || !b[0].is_ascii_alphanumeric()
        || !b[b.len() - 1].is_ascii_alphanumeric()
    {
        return Err(format!(
            "{s:?} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Qualified name (label and annotation keys): optional DNS subdomain prefix and '/',
/// then a name of at most 63 `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_dns1123_subdomain(p).map_err(|e| format!("key {key:?}: prefix {e}"))?;
    }
    if name.is_empty() {
        return Err(format!("key {key:?} has an empty name"));
    }
    check_label_value(name).map_err(|_| {
        format!(
            "key {key:?}: the name part must be at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends"
        )
    })
}

/// Makes any string a valid label value: keeps allowed characters (others become '-'),
/// trims to 63, and strips non-alphanumerics from both ends. May return "".
pub fn sanitize_label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii() && is_label_char(c as u8) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let truncated: String = mapped.chars().take(63).collect();
    truncated
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Names the API server refuses are refused, names it accepts pass.
    #[test]
    fn dns_labels() {
        assert!(check_dns1123_label("backend-app").is_ok());
        assert!(check_dns1123_label("Backend").is_err());
        assert!(check_dns1123_label("-a").is_err());
        assert!(check_dns1123_label(&"a".repeat(64)).is_err());
        assert!(check_dns1035_label("1app").is_err());
        assert!(check_dns1123_subdomain("db-config.v1").is_ok());
    }

    // Port names follow IANA service name syntax.
    #[test]
    fn port_names() {
        assert!(check_port_name("http").is_ok());
        assert!(check_port_name("http-metrics1").is_ok());
        assert!(check_port_name("8080").is_err());
        assert!(check_port_name("a--b").is_err());
        assert!(check_port_name("way-too-long-name").is_err());
        assert!(check_port_name("HTTP").is_err());
    }

    // Label values and keys follow the apimachinery rules.
    #[test]
    fn labels() {
        assert!(check_label_value("1.0.0").is_ok());
        assert!(check_label_value("has space").is_err());
        assert!(check_label_value("-x").is_err());
        assert!(check_qualified_name("example.com/team").is_ok());
        assert!(check_qualified_name("Example.com/team").is_err());
        assert!(check_qualified_name("a/b/c").is_err());
        assert!(check_qualified_name("team").is_ok());
    }

    // Sanitising always yields a valid label value.
    #[test]
    fn sanitize() {
        assert_eq!(sanitize_label_value("_1.0+build"), "1.0-build");
        assert_eq!(sanitize_label_value(&"a".repeat(80)).len(), 63);
        assert!(check_label_value(&sanitize_label_value("..__..")).is_ok());
    }
}
