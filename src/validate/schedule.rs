//! A SafeJob's schedule and time zone, checked as the CronJob controller will read them:
//! five cron fields (minute, hour, day of month, month, day of week; names such as
//! `MON` and `JAN` allowed) or a descriptor (`@daily`, ...), and a time zone that is a
//! real IANA name. The zone list is the tz database bundled into the binary, so the
//! answer does not depend on the machine `render` runs on.

use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Descriptors the CronJob controller accepts (`@every` is left out on purpose: its runs
/// are counted from whenever the controller started).
pub const DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One cron field: its name, bounds and the names it may use (first name = `min`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 6,
        names: DAYS,
    },
];

/// Checks a cron schedule; the error says which field is wrong and why.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    // As strict as the CRD's CEL rule: `render` must not pass what `kubectl apply` refuses.
    if schedule.trim() != schedule {
        return Err(format!("{schedule:?} starts or ends with a space"));
    }
    if schedule.starts_with('@') {
        return if DESCRIPTORS.contains(&schedule) {
            Ok(())
        } else {
            Err(format!(
                "{schedule:?} is not a descriptor the CronJob controller accepts ({})",
                DESCRIPTORS.join(", ")
            ))
        };
    }
    if schedule.contains("TZ=") {
        return Err("put the zone in spec.timeZone, not TZ= or CRON_TZ= in the schedule".into());
    }
    let parts: Vec<&str> = schedule.split_whitespace().collect();
    if parts.len() != FIELDS.len() {
        return Err(format!(
            "{schedule:?} has {} fields; a schedule has 5: minute hour day-of-month month day-of-week",
            parts.len()
        ));
    }
    for (part, field) in parts.iter().zip(FIELDS.iter()) {
        check_field(part, field).map_err(|e| format!("{} field {part:?}: {e}", field.name))?;
    }
    Ok(())
}

fn check_field(text: &str, field: &Field) -> Result<(), String> {
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            let n: u32 = step
                .parse()
                .map_err(|_| format!("step {step:?} is not a number"))?;
            if n == 0 {
                return Err("a step of 0 never fires".into());
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        let (low, high) = match range.split_once('-') {
            Some((a, b)) => (value(a, field)?, value(b, field)?),
            None => {
                let v = value(range, field)?;
                // `5/15` means 5 to the end, every 15.
                (v, if step.is_some() { field.max } else { v })
            }
        };
        if low > high {
            return Err(format!("range {range:?} runs backwards"));
        }
    }
    Ok(())
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        return Ok(field.min + u32::try_from(i).unwrap_or(0));
    }
    let n: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if n < field.min || n > field.max {
        return Err(format!("{n} is outside {}-{}", field.min, field.max));
    }
    Ok(n)
}

/// Every IANA time zone name of the bundled tz database, exactly as spelled there.
fn zones() -> &'static BTreeSet<String> {
    static ZONES: OnceLock<BTreeSet<String>> = OnceLock::new();
    ZONES.get_or_init(|| {
        jiff::tz::TimeZoneDatabase::bundled()
            .available()
            .map(|name| name.as_str().to_string())
            .collect()
    })
}

/// Checks an IANA time zone name, spelled exactly (the controller manager's lookup is
/// case-sensitive); `Local` is refused, as by the API server.
pub fn check_time_zone(zone: &str) -> Result<(), String> {
    if zone.eq_ignore_ascii_case("local") {
        return Err("Local is the controller manager's own zone; name one, e.g. Etc/UTC".into());
    }
    if zones().contains(zone) {
        return Ok(());
    }
    let hint = zones()
        .iter()
        .find(|z| z.eq_ignore_ascii_case(zone))
        .map(|z| format!("; did you mean {z}?"))
        .unwrap_or_default();
    Err(format!(
        "{zone:?} is not an IANA time zone name (e.g. Europe/Oslo, America/New_York, Etc/UTC){hint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Standard schedules and descriptors pass; each kind of mistake names its field.
    #[test]
    fn schedules() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 9-17 * * MON-FRI",
            "30 3 1,15 * *",
            "0 0 1 JAN *",
            "5/10 * * * ?",
            "@daily",
            "@hourly",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        for (bad, needle) in [
            ("0 2 * *", "has 4 fields"),
            ("60 * * * *", "minute field"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day of month field"),
            ("0 0 * 13 *", "month field"),
            ("0 0 * * 7", "day of week field"),
            ("0 0 * * FUN", "is not a number"),
            ("*/0 * * * *", "step of 0"),
            ("0 5-2 * * *", "runs backwards"),
            ("@every 5m", "not a descriptor"),
            ("@Hourly", "not a descriptor"),
            (" @daily", "starts or ends with a space"),
            ("0 2 * * * ", "starts or ends with a space"),
            ("CRON_TZ=UTC 0 2 * * *", "spec.timeZone"),
        ] {
            let err = check_schedule(bad).expect_err(bad);
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    // Zones are the tz database's names, exactly spelled; Local is refused.
    #[test]
    fn time_zones() {
        for ok in ["Europe/Oslo", "America/New_York", "Etc/UTC", "UTC"] {
            assert_eq!(check_time_zone(ok), Ok(()), "{ok}");
        }
        assert!(
            check_time_zone("europe/oslo")
                .unwrap_err()
                .contains("Europe/Oslo")
        );
        assert!(check_time_zone("Mars/Olympus").is_err());
        assert!(check_time_zone("CEST").is_err());
        assert!(check_time_zone("Local").is_err());
    }
}
