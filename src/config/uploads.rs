//! Settings that bound what one person can make the server do with files and slow connections: extracted
//! text size, files per message, storage per user, the header-read and idle-body timeouts and the minimum
//! body rate.

use super::{ConfigError, ModelConfig, parse_num};
use std::fmt::Write as _;
use std::time::Duration;

/// Default minimum average rate of a request body: 4 KiB/s (a 30 MB upload may take two hours, no more).
const DEFAULT_MIN_RATE: u64 = 4 * 1024;
/// Default storage per user: 1 GiB.
const DEFAULT_STORAGE: u64 = 1 << 30;
/// Extracted text needs only to exceed what the largest context window can take; this many bytes per token is
/// well above any real text (English averages about 4).
const TEXT_BYTES_PER_TOKEN: u64 = 8;
/// Floor and ceiling of the derived text cap.
const MIN_TEXT: u64 = 2 * 1024 * 1024;
const MAX_DERIVED_TEXT: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Uploads {
    /// Extracted text of a file is cut at this many bytes (UTF-8), and the file is marked as cut.
    pub max_text_bytes: u64,
    /// Files one message (and one upload request) may carry.
    pub max_files_per_message: u32,
    /// Bytes of stored files per user; 0 = unlimited.
    pub max_storage_per_user: u64,
    /// A connection that has not sent a whole request header in this time is closed.
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long fails with 408.
    pub body_idle_timeout: Duration,
    /// After [`Uploads::body_rate_grace`], a request body must have averaged at least this many bytes per
    /// second, else it fails with 408 (0 = no minimum). Without it, a trickle just over the idle timeout's
    /// 8 KiB per period (about 275 B/s) kept a 30 MB upload open for a day.
    pub min_body_bytes_per_sec: u64,
    pub body_rate_grace: Duration,
}

/// The values from `llmeta.toml`.
pub struct FileValues {
    pub max_text_bytes: Option<u64>,
    pub max_files_per_message: Option<u32>,
    pub max_storage_per_user: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub body_idle_timeout_secs: Option<u64>,
    pub min_body_bytes_per_sec: Option<u64>,
    pub body_rate_grace_secs: Option<u64>,
}

pub(super) type Pick<'a> = dyn Fn(&[&str], &str, Option<String>) -> Option<(String, String)> + 'a;

impl Uploads {
    pub(super) fn load(
        pick: &Pick<'_>,
        file: FileValues,
        models: &[ModelConfig],
    ) -> Result<Uploads, ConfigError> {
        let largest_window = models
            .iter()
            .map(|m| m.context_window.max(0) as u64)
            .max()
            .unwrap_or(0);
        let derived = (largest_window * TEXT_BYTES_PER_TOKEN).clamp(MIN_TEXT, MAX_DERIVED_TEXT);
        let max_text_bytes = parse_num(
            pick(
                &["LLMETA_MAX_TEXT_BYTES"],
                "max_text_bytes",
                file.max_text_bytes.map(|n| n.to_string()),
            ),
            64 * 1024,
            1 << 30,
            derived,
        )?;
        let max_files_per_message = parse_num(
            pick(
                &["LLMETA_MAX_FILES_PER_MESSAGE"],
                "max_files_per_message",
                file.max_files_per_message.map(|n| n.to_string()),
            ),
            1,
            100,
            5,
        )?;
        let max_storage_per_user = parse_num(
            pick(
                &["LLMETA_MAX_STORAGE_PER_USER"],
                "max_storage_per_user",
                file.max_storage_per_user.map(|n| n.to_string()),
            ),
            0,
            u64::MAX / 2,
            DEFAULT_STORAGE,
        )?;
        let header_read_timeout_secs = parse_num(
            pick(
                &["LLMETA_HEADER_READ_TIMEOUT_SECS"],
                "header_read_timeout_secs",
                file.header_read_timeout_secs.map(|n| n.to_string()),
            ),
            1,
            3600,
            20,
        )?;
        let body_idle_timeout_secs = parse_num(
            pick(
                &["LLMETA_BODY_IDLE_TIMEOUT_SECS"],
                "body_idle_timeout_secs",
                file.body_idle_timeout_secs.map(|n| n.to_string()),
            ),
            1,
            3600,
            30,
        )?;
        let min_body_bytes_per_sec = parse_num(
            pick(
                &["LLMETA_MIN_BODY_BYTES_PER_SEC"],
                "min_body_bytes_per_sec",
                file.min_body_bytes_per_sec.map(|n| n.to_string()),
            ),
            0,
            1 << 30,
            DEFAULT_MIN_RATE,
        )?;
        let body_rate_grace_secs = parse_num(
            pick(
                &["LLMETA_BODY_RATE_GRACE_SECS"],
                "body_rate_grace_secs",
                file.body_rate_grace_secs.map(|n| n.to_string()),
            ),
            1,
            3600,
            30,
        )?;
        Ok(Uploads {
            max_text_bytes,
            max_files_per_message,
            max_storage_per_user,
            header_read_timeout: Duration::from_secs(header_read_timeout_secs),
            body_idle_timeout: Duration::from_secs(body_idle_timeout_secs),
            min_body_bytes_per_sec,
            body_rate_grace: Duration::from_secs(body_rate_grace_secs),
        })
    }

    pub(super) fn describe(&self, out: &mut String) {
        let _ = writeln!(out, "max_text_bytes = {}", self.max_text_bytes);
        let _ = writeln!(
            out,
            "max_files_per_message = {}",
            self.max_files_per_message
        );
        let _ = writeln!(
            out,
            "max_storage_per_user = {}{}",
            self.max_storage_per_user,
            if self.max_storage_per_user == 0 {
                "  # unlimited"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "header_read_timeout_secs = {}",
            self.header_read_timeout.as_secs()
        );
        let _ = writeln!(
            out,
            "body_idle_timeout_secs = {}",
            self.body_idle_timeout.as_secs()
        );
        let _ = writeln!(
            out,
            "min_body_bytes_per_sec = {}{}",
            self.min_body_bytes_per_sec,
            if self.min_body_bytes_per_sec == 0 {
                "  # no minimum"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "body_rate_grace_secs = {}",
            self.body_rate_grace.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load;

    #[test]
    fn defaults_and_validation() {
        let c = load(&[]).unwrap();
        assert_eq!(c.uploads.max_files_per_message, 5);
        assert_eq!(c.uploads.max_storage_per_user, 1 << 30);
        assert!(c.uploads.max_text_bytes >= 2 * 1024 * 1024);
        assert!(c.describe().contains("max_storage_per_user = 1073741824"));
        assert_eq!(c.uploads.min_body_bytes_per_sec, 4096);
        assert!(c.describe().contains("min_body_bytes_per_sec = 4096"));
        assert!(c.describe().contains("body_rate_grace_secs = 30"));
        let c = load(&[("LLMETA_MAX_STORAGE_PER_USER", "0")]).unwrap();
        assert_eq!(c.uploads.max_storage_per_user, 0);
        for (var, bad) in [
            ("LLMETA_MAX_FILES_PER_MESSAGE", "0"),
            ("LLMETA_MAX_TEXT_BYTES", "10"),
            ("LLMETA_HEADER_READ_TIMEOUT_SECS", "0"),
            ("LLMETA_BODY_IDLE_TIMEOUT_SECS", "x"),
            ("LLMETA_BODY_RATE_GRACE_SECS", "0"),
            ("LLMETA_MIN_BODY_BYTES_PER_SEC", "-1"),
        ] {
            assert_eq!(load(&[(var, bad)]).unwrap_err().setting, var);
        }
        // Uploads stay below what the JSON viewer's 32-bit offsets can address.
        let e = load(&[("LLMETA_MAX_UPLOAD_BYTES", "4294967296")]).unwrap_err();
        assert!(e.message.contains("32-bit"), "{}", e.message);
        assert!(load(&[("LLMETA_MAX_UPLOAD_BYTES", "2147483648")]).is_ok());
    }
}
