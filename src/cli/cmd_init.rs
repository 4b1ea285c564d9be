//! `cairn init`: create a repository.

use super::{output, CliError, Context};
use crate::format::config::{ChunkerParams, ObjectLockConfig};
use crate::repo::{InitOptions, Repository};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Average chunk size (a power of two, e.g. 1M, 512K); min is half, max eight times it.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size, conflicts_with = "copy_chunker_params")]
    pub chunk_size: u64,
    /// Target pack file size.
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    pub pack_size: u64,
    /// Compression: off, auto, fastest, max or a zstd level 1-22.
    #[arg(long, default_value = "auto", value_parser = parse_compression)]
    pub compression: Compression,
    /// Share the chunker parameters and the chunker and blob-id keys of the
    /// repository given with --from-repo, so that backups of the same data
    /// give the same blobs in both and copies between them deduplicate.
    #[arg(long)]
    pub copy_chunker_params: bool,
    #[command(flatten)]
    pub from: super::from_repo::FromRepoArgs,
    /// Protect every object with S3 Object Lock for this many days (the
    /// bucket must have Object Lock enabled). Prune leaves objects alone
    /// while they are locked and extends the lock of what it keeps.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub object_lock_days: Option<u32>,
    /// Object Lock mode: compliance (nobody can shorten a lock) or
    /// governance (users with the bypass permission can).
    #[arg(long, value_name = "MODE", default_value = "compliance", value_parser = ["compliance", "governance"], requires = "object_lock_days")]
    pub object_lock_mode: String,
    /// Argon2id memory in KiB for the first key (for tests).
    #[arg(long, value_name = "KIB", hide = true)]
    pub kdf_memory: Option<u32>,
}

/// A compression choice: `None` stores blobs uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression(pub Option<i32>);

/// Parses `off|auto|fastest|max|N`.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    Ok(Compression(match s {
        "off" | "none" => None,
        "auto" => Some(crate::repo::DEFAULT_COMPRESSION),
        "fastest" => Some(1),
        "max" => Some(19),
        n => match n.parse::<i32>() {
            Ok(level) if (1..=22).contains(&level) => Some(level),
            _ => {
                return Err(format!(
                    "{s:?}: expected off, auto, fastest, max or a level from 1 to 22"
                ))
            }
        },
    }))
}

/// Parses sizes like `1048576`, `512K`, `1M`, `16MiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 1M)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("{s:?}: unknown unit {other:?}")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

pub fn run(ctx: &Context, args: &Args) -> Result<i32, CliError> {
    let avg = u32::try_from(args.chunk_size)
        .map_err(|_| CliError::Usage(format!("--chunk-size {} is too large", args.chunk_size)))?;
    let chunker = ChunkerParams::from_avg(avg).map_err(|e| CliError::Usage(format!("--chunk-size: {e}")))?;
    let pack_size = u32::try_from(args.pack_size)
        .map_err(|_| CliError::Usage(format!("--pack-size {} is too large", args.pack_size)))?;
    let kdf = super::cmd_key::kdf_params(args.kdf_memory)?;
    let (chunker, share_chunker_with) = if args.copy_chunker_params {
        let from = args.from.open()?;
        (from.config().chunker, Some(from.key().clone()))
    } else {
        (chunker, None)
    };
    let storage = ctx.storage()?;
    let password = password_for_init(ctx)?;
    let opts = InitOptions {
        chunker,
        pack_size,
        compression: args.compression.0,
        kdf,
        share_chunker_with,
        object_lock: args.object_lock_days.map(|days| ObjectLockConfig {
            days,
            compliance: args.object_lock_mode == "compliance",
        }),
    };
    let repo = Repository::init(storage, password.as_bytes(), opts)?;
    if ctx.global.json {
        output::print_json(&serde_json::json!({
            "message_type": "initialized",
            "id": repo.config().id.to_hex(),
            "repository": repo.storage().location(),
        }))?;
    } else if !ctx.global.quiet {
        println!(
            "created cairn repository {} at {}",
            repo.config().id.short(),
            repo.storage().location()
        );
        if let Some(lock) = repo.config().object_lock {
            println!(
                "Every object is written under object lock for {} days ({} mode); prune extends the lock of what it keeps.",
                lock.days,
                if lock.compliance { "compliance" } else { "governance" }
            );
        }
        println!("Keep the password safe: data in the repository cannot be read without it.");
    }
    Ok(0)
}

fn password_for_init(ctx: &Context) -> Result<zeroize::Zeroizing<String>, CliError> {
    let p = super::password::read_new(&ctx.global)?;
    if p.is_empty() {
        return Err(CliError::Password("an empty password is not allowed".into()));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_compression() {
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12X").is_err());
        assert_eq!(parse_compression("off").unwrap(), Compression(None));
        assert_eq!(parse_compression("max").unwrap(), Compression(Some(19)));
        assert_eq!(parse_compression("7").unwrap(), Compression(Some(7)));
        assert!(parse_compression("99").is_err());
    }
}
