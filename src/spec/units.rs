//! Durations as health checks write them: `500ms`, `5s`, `1m30s`, `2h`
//! (compose's and Go's form; units ms, s, m, h, in that descending order,
//! each at most once). Pure; milliseconds out.

/// Parses a duration into milliseconds; `None` when it is not one. Zero
/// is refused (a zero interval or timeout is never what a user meant).
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, rank, mult) = if rest.starts_with("ms") {
            ("ms", 0, 1)
        } else if rest.starts_with('h') {
            ("h", 3, 3_600_000)
        } else if rest.starts_with('m') {
            ("m", 2, 60_000)
        } else if rest.starts_with('s') {
            ("s", 1, 1_000)
        } else {
            return None;
        };
        if rank >= last_rank {
            return None;
        }
        last_rank = rank;
        rest = &rest[unit.len()..];
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    (total > 0).then_some(total)
}

/// Writes milliseconds as [`parse_duration`] reads them (`1m30s`, `500ms`).
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{format_duration, parse_duration};

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("5s"), Some(5_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("2h"), Some(7_200_000));
        assert_eq!(parse_duration("1h2m3s4ms"), Some(3_723_004));
        for bad in [
            "", "5", "s", "5x", "1s1m", "5s5s", "0s", "-1s", "1.5s", "5 s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        for ms in [1, 500, 1_000, 90_000, 3_723_004, 7_200_000] {
            assert_eq!(parse_duration(&format_duration(ms)), Some(ms), "{ms}");
        }
        assert_eq!(format_duration(90_000), "1m30s");
    }
}
