//! Kubernetes durations (Go's `time.ParseDuration`): a sequence of decimal
//! numbers, each with a unit, as in `90s`, `1m`, `1h30m`, `720h` or `1.5h`.
//! Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`. `0` alone is zero.
//! Negative durations are refused: a time to live or a period is never
//! negative.

use std::time::Duration;

/// Why a duration was refused, naming the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason}")]
pub struct DurationError {
    pub text: String,
    pub reason: String,
}

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Kubernetes duration.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason: &str| DurationError {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err(fail("negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(fail("empty (expected a number and a unit, e.g. 720h or 1h30m)"));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac = "";
        if let Some(after) = rest.strip_prefix('.') {
            let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            frac = &after[..frac_len];
            rest = &after[frac_len..];
        }
        if int.is_empty() && frac.is_empty() {
            return Err(fail("expected a number (e.g. 720h or 1h30m)"));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(fail("missing unit (one of ns, us, ms, s, m, h)"));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(fail(&format!("unknown unit {unit:?} (one of ns, us, ms, s, m, h)")));
        };
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| fail("number too large"))?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(|| fail("too large"))?;
        if !frac.is_empty() {
            // Digits past nanosecond precision cannot matter.
            let digits = &frac[..frac.len().min(20)];
            let num: u128 = digits.parse().map_err(|_| fail("number too large"))?;
            part += num * scale / 10u128.pow(digits.len() as u32);
        }
        total = total.checked_add(part).ok_or_else(|| fail("too large"))?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| fail("too large"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_durations() {
        assert_eq!(parse("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("720h").unwrap(), Duration::from_secs(720 * 3600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse("2h45m30.5s").unwrap(),
            Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500)
        );
        assert_eq!(parse("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse("10µs").unwrap(), Duration::from_micros(10));
        assert_eq!(parse("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("+5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_named() {
        for (text, reason) in [
            ("", "empty"),
            ("30", "missing unit"),
            ("30d", "unknown unit \"d\""),
            ("1h30", "missing unit"),
            ("h", "expected a number"),
            (".h", "expected a number"),
            ("-1h", "negative"),
            ("1 h", "unknown unit \" h\""),
            ("99999999999999999999999999999999999999999h", "too large"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.text, text);
            assert!(err.reason.contains(reason), "{text:?}: {err}");
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
    }
}
