//! Rate limits (`[limits]` in the file, or `LLMETA_USER_RPM`, `LLMETA_USER_TPM`, `LLMETA_KEY_RPM`,
//! `LLMETA_IP_RPM`): requests and tokens per minute per person, requests per minute per API key, and requests
//! per minute per client address on the pages used before signing in. 0 turns a limit off (the default).

use super::{ConfigError, parse_num};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub user_rpm: Option<u64>,
    pub user_tpm: Option<u64>,
    pub key_rpm: Option<u64>,
    pub ip_rpm: Option<u64>,
}

/// Each limit per minute; 0 = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Model calls (chat pages and API) a person may start in a minute.
    pub user_rpm: u64,
    /// Tokens a person's calls may ask for in a minute: each call counts its prompt's estimate and the answer
    /// it reserves (its max tokens), as it starts.
    pub user_tpm: u64,
    /// Calls one API key may make in a minute.
    pub key_rpm: u64,
    /// Requests a client address may make in a minute to the pages used without signing in (log in, sign up,
    /// password reset, verification, sign-in providers, set-up).
    pub ip_rpm: u64,
}

impl Limits {
    pub(super) fn load(
        pick: &super::uploads::Pick<'_>,
        file: Option<FileLimits>,
    ) -> Result<Limits, ConfigError> {
        let file = file.unwrap_or_default();
        let one = |env: &str, key: &str, v: Option<u64>| {
            parse_num(
                pick(&[env], &format!("limits.{key}"), v.map(|n| n.to_string())),
                0,
                100_000_000,
                0,
            )
        };
        Ok(Limits {
            user_rpm: one("LLMETA_USER_RPM", "user_rpm", file.user_rpm)?,
            user_tpm: one("LLMETA_USER_TPM", "user_tpm", file.user_tpm)?,
            key_rpm: one("LLMETA_KEY_RPM", "key_rpm", file.key_rpm)?,
            ip_rpm: one("LLMETA_IP_RPM", "ip_rpm", file.ip_rpm)?,
        })
    }
}
