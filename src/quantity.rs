//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`): parsing and comparison.
//!
//! The CRD's embedded core schemas accept any string for a quantity, so the operator
//! parses them itself: a value the API server would refuse never reaches it.

use std::cmp::Ordering;

/// A parsed quantity, in base units (cores, bytes, ...).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct ParsedQuantity(pub f64);

impl ParsedQuantity {
    /// Total order for comparisons (quantities are never NaN).
    pub fn cmp_value(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Parses a quantity string the way the API server does, or says why it cannot.
pub fn parse(input: &str) -> Result<ParsedQuantity, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty quantity".into());
    }
    if s.len() != input.len() {
        return Err(format!("{input:?} has surrounding spaces"));
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let num_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_len);
    if !number.bytes().any(|b| b.is_ascii_digit()) || number.matches('.').count() > 1 {
        return Err(format!(
            "{input:?} is not a quantity (like 250m, 1.5, 512Mi)"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{input:?} is not a quantity (like 250m, 1.5, 512Mi)"))?;
    let multiplier = suffix_multiplier(suffix).ok_or_else(|| {
        format!("{input:?} has an unknown suffix {suffix:?} (use m, k, M, G, Ki, Mi, Gi, ...)")
    })?;
    let parsed = sign * value * multiplier;
    if !parsed.is_finite() {
        return Err(format!("{input:?} is out of range"));
    }
    Ok(ParsedQuantity(parsed))
}

fn suffix_multiplier(suffix: &str) -> Option<f64> {
    let m = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3
            {
                return None;
            }
            let e: i32 = exp.parse().ok()?;
            10f64.powi(e)
        }
    };
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every suffix family the API server accepts parses to the right base value.
    #[test]
    fn parses_valid_quantities() {
        assert_eq!(parse("250m").unwrap().0, 0.25);
        assert_eq!(parse("2").unwrap().0, 2.0);
        assert_eq!(parse("1.5").unwrap().0, 1.5);
        assert_eq!(parse("512Mi").unwrap().0, 512.0 * 1024.0 * 1024.0);
        assert_eq!(parse("1G").unwrap().0, 1e9);
        assert_eq!(parse("1e3").unwrap().0, 1000.0);
        assert_eq!(parse(".5").unwrap().0, 0.5);
        assert_eq!(parse("-1").unwrap().0, -1.0);
    }

    // Strings the API server refuses are refused here too, with a reason.
    #[test]
    fn rejects_invalid_quantities() {
        for bad in [
            "", "banana", "1.2.3", "1Kb", "1K", "m", " 1", "1 ", "1e", "--1", "0x10",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse("banana").unwrap_err().contains("banana"));
    }

    // Comparison follows the numeric value across suffixes.
    #[test]
    fn compares_across_suffixes() {
        let a = parse("1Gi").unwrap();
        let b = parse("1000Mi").unwrap();
        assert_eq!(a.cmp_value(&b), Ordering::Greater);
        assert_eq!(
            parse("1").unwrap().cmp_value(&parse("1000m").unwrap()),
            Ordering::Equal
        );
    }
}
