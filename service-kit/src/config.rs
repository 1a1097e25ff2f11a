//! Settings every service takes, from flags or environment variables.

use std::path::PathBuf;

use store_actor::Durability;

use crate::telemetry::LogFormat;

/// Flags and environment variables shared by `products` and `orders`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Directory for the service's data files (created if missing).
    #[arg(long, env = "SHOP_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// File holding the Biscuit root public key (`ed25519/<hex>`), as written by `shop keygen`.
    #[arg(long, env = "SHOP_PUBLIC_KEY_FILE")]
    pub public_key_file: PathBuf,
    /// When writes count as done: `always` (fsync before answering), `interval:MS` or `never`.
    #[arg(long, env = "SHOP_DURABILITY", default_value = "always")]
    pub durability: Durability,
    /// Log format.
    #[arg(long, env = "SHOP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// File with revoked token revocation ids (hex), one per line; `#` starts a comment.
    #[arg(long, env = "SHOP_REVOKED_TOKENS_FILE")]
    pub revoked_tokens_file: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SHOP_BODY_LIMIT", default_value_t = crate::json::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Time a whole request body may take to arrive once it is read, in milliseconds (408
    /// after it).
    #[arg(long, env = "SHOP_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// Longest accepted bearer token, in bytes; longer ones are refused (401) before any
    /// signature work.
    #[arg(long, env = "SHOP_MAX_TOKEN_BYTES", default_value_t = crate::auth::DEFAULT_MAX_TOKEN_BYTES)]
    pub max_token_bytes: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "SHOP_WORKERS")]
    pub workers: Option<usize>,
    /// How long the change feed's history is kept on disk, in hours: journals retired by
    /// compaction stay readable this long, so consumers resume without a resync.
    #[arg(long, env = "SHOP_FEED_HISTORY_HOURS", default_value_t = 24)]
    pub feed_history_hours: u64,
    /// At most this many MiB of change feed history per store (the oldest goes first; 0 keeps
    /// only the live journal).
    #[arg(long, env = "SHOP_FEED_HISTORY_MB", default_value_t = 256)]
    pub feed_history_mb: u64,
    /// Where the stores keep their records: `in-memory` (all of them: fastest, RAM about 2.5
    /// times the data files) or `index` (only a key directory and the indexes; records are read
    /// from the files through a cache of --cache-mb), for data larger than memory.
    #[arg(long, env = "SHOP_MEMORY", value_enum, default_value_t = MemoryMode::InMemory)]
    pub memory: MemoryMode,
    /// With `--memory index`: MiB of parsed records cached per store.
    #[arg(long, env = "SHOP_CACHE_MB", default_value_t = 64)]
    pub cache_mb: u64,
}

/// `--memory`: see [`store_actor::Memory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MemoryMode {
    /// Every record in memory.
    InMemory,
    /// A key directory in memory, records on disk behind a cache.
    Index,
}

impl CommonArgs {
    /// The settings with every flag at its default, for a service run from code (`shop up`,
    /// tests, benchmarks) rather than from its command line; change fields as needed.
    pub fn new(data_dir: PathBuf, public_key_file: PathBuf) -> Self {
        Self {
            data_dir,
            public_key_file,
            durability: Durability::Always,
            log_format: LogFormat::Pretty,
            revoked_tokens_file: None,
            body_limit: crate::json::DEFAULT_BODY_LIMIT,
            body_timeout_ms: 10_000,
            max_token_bytes: crate::auth::DEFAULT_MAX_TOKEN_BYTES,
            workers: None,
            feed_history_hours: 24,
            feed_history_mb: 256,
            memory: MemoryMode::InMemory,
            cache_mb: 64,
        }
    }

    /// The stores' memory mode, from `--memory` and `--cache-mb`.
    pub fn memory(&self) -> store_actor::Memory {
        match self.memory {
            MemoryMode::InMemory => store_actor::Memory::InMemory,
            MemoryMode::Index => store_actor::Memory::Index {
                cache_bytes: self.cache_mb.saturating_mul(1 << 20),
            },
        }
    }

    /// The change feed's retention on disk, from `--feed-history-hours` and `--feed-history-mb`.
    pub fn feed_history(&self) -> store_actor::FeedHistory {
        store_actor::FeedHistory {
            max_age: std::time::Duration::from_secs(self.feed_history_hours.saturating_mul(3600)),
            max_bytes: self.feed_history_mb.saturating_mul(1 << 20),
        }
    }

    /// The revoked token ids from `--revoked-tokens-file` (none without it).
    pub fn revoked_ids(&self) -> std::io::Result<Vec<String>> {
        self.revoked_tokens_file
            .as_deref()
            .map_or(Ok(Vec::new()), read_revocation_list)
    }
}

/// Reads a revocation list: one hex id per line, blank lines and `#` comments ignored.
pub fn read_revocation_list(path: &std::path::Path) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_list_skips_comments_and_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked");
        std::fs::write(&path, "# revoked after the leak\nabcd\n\n  ef01  # bob\n").unwrap();
        assert_eq!(read_revocation_list(&path).unwrap(), ["abcd", "ef01"]);
    }
}
