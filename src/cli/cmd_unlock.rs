//! `cairn unlock`: remove stale locks (or all of them); `--retry-lock` parsing.

use std::time::Duration;

use serde_json::json;

use super::{output, CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove every lock, live ones too. Only safe when no other cairn
    /// process uses the repository.
    #[arg(long)]
    pub remove_all: bool,
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let repo = ctx.open()?;
    let removed = if args.remove_all {
        repo.remove_all_locks()?
    } else {
        repo.remove_stale_locks()?
    };
    if ctx.global.json {
        output::print_json(&json!({ "message_type": "unlock", "removed": removed }))?;
    } else if !ctx.global.quiet {
        let what = if args.remove_all { "" } else { "stale " };
        let plural = if removed == 1 { "" } else { "s" };
        println!("removed {removed} {what}lock{plural}");
    }
    Ok(0)
}

/// Parses a duration such as `0`, `30s`, `5m`, `1h`, `1h30m` or `2d`
/// (units d, h, m, s; each number followed by its unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected forms like 30s, 5m, 1h30m or 0");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest.as_bytes().get(digits).copied().ok_or_else(bad)?;
        let seconds = match unit {
            b'd' => 86_400,
            b'h' => 3_600,
            b'm' => 60,
            b's' => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(seconds)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[digits + 1..];
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        for (text, secs) in [
            ("0", 0),
            ("30s", 30),
            ("5m", 300),
            ("1h", 3600),
            ("1h30m", 5400),
            ("2d1s", 172_801),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for text in [
            "",
            "5",
            "m",
            "1x",
            "1h30",
            "-1s",
            "1.5h",
            "1 h",
            "99999999999999999999s",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
    }
}
