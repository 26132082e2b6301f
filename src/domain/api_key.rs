//! API keys: the key format, a key's name and its lifetime.
//!
//! A key reads `sk-llmeta-<lookup>_<secret>`. The lookup id (12 letters and digits) finds the key's row; the
//! secret (43 letters and digits, about 256 random bits) is never stored, only its SHA-256. A secret that
//! random cannot be guessed from its hash, so a slow password hash would only cost time on every request.

use crate::secret::Secret;
use rand::Rng as _;
use subtle::ConstantTimeEq as _;

/// What every llmeta key starts with.
pub const PREFIX: &str = "sk-llmeta-";
const LOOKUP_LEN: usize = 12;
const SECRET_LEN: usize = 43;

/// A key just made: the whole key (to show once) and what is stored about it.
pub struct NewApiKey {
    pub key: Secret<String>,
    pub lookup: String,
    pub secret_hash: String,
    pub last4: String,
}

impl NewApiKey {
    pub fn generate() -> NewApiKey {
        let lookup = random_alnum(LOOKUP_LEN);
        let secret = random_alnum(SECRET_LEN);
        let key = format!("{PREFIX}{lookup}_{secret}");
        NewApiKey {
            last4: last4(&key),
            secret_hash: crate::util::sha256_hex(&secret),
            lookup,
            key: Secret::new(key),
        }
    }
}

fn random_alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The last four characters of a key (ASCII), stored to tell keys apart.
fn last4(key: &str) -> String {
    key[key.len().saturating_sub(4)..].to_string()
}

/// How a key is shown once made: `sk-…abcd`.
pub fn display(last4: &str) -> String {
    format!("sk-…{last4}")
}

/// A key as a client sent it, split into its parts; the secret stays wrapped.
pub struct PresentedKey {
    pub lookup: String,
    secret: Secret<String>,
}

impl PresentedKey {
    /// `None` for anything that is not exactly of the key format.
    pub fn parse(raw: &str) -> Option<PresentedKey> {
        let (lookup, secret) = raw.strip_prefix(PREFIX)?.split_once('_')?;
        let ok =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric());
        (ok(lookup, LOOKUP_LEN) && ok(secret, SECRET_LEN)).then(|| PresentedKey {
            lookup: lookup.to_string(),
            secret: Secret::new(secret.to_string()),
        })
    }

    /// Whether the secret hashes to `stored_hash`, compared in constant time.
    pub fn matches(&self, stored_hash: &str) -> bool {
        let hash = crate::util::sha256_hex(self.secret.expose());
        bool::from(hash.as_bytes().ct_eq(stored_hash.as_bytes()))
    }
}

/// A key's name: trimmed, 1 to 100 characters, no control or invisible characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<KeyName, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("Give the key a name, such as the program that will use it.".into());
        }
        if s.chars().count() > 100 {
            return Err("Key names are limited to 100 characters.".into());
        }
        if s.chars().any(|c| c.is_control() || super::is_invisible(c)) {
            return Err("Key names cannot contain control or invisible characters.".into());
        }
        Ok(KeyName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a key works: 1 to 3650 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLifetime {
    days: i64,
}

impl KeyLifetime {
    pub const MAX_DAYS: i64 = 3650;

    pub fn days(days: i64) -> Result<KeyLifetime, String> {
        if (1..=Self::MAX_DAYS).contains(&days) {
            Ok(KeyLifetime { days })
        } else {
            Err(format!(
                "A key can expire after 1 to {} days; leave the field empty for a key that does not expire.",
                Self::MAX_DAYS
            ))
        }
    }

    /// A form field: empty for no expiry, else a whole number of days.
    pub fn parse_form(raw: &str) -> Result<Option<KeyLifetime>, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let days = s.parse::<i64>().map_err(|_| {
            format!(
                "Write the expiry as a whole number of days from 1 to {}, or leave it empty.",
                Self::MAX_DAYS
            )
        })?;
        KeyLifetime::days(days).map(Some)
    }

    /// The expiry time of a key made at `now_ms`.
    pub fn expires_ms(self, now_ms: i64) -> i64 {
        now_ms + self.days * 86_400_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match_only_their_hash() {
        let k = NewApiKey::generate();
        let full = k.key.expose();
        assert!(full.starts_with(PREFIX));
        assert_eq!(full.len(), PREFIX.len() + LOOKUP_LEN + 1 + SECRET_LEN);
        assert!(full.ends_with(&k.last4));
        let p = PresentedKey::parse(full).unwrap();
        assert_eq!(p.lookup, k.lookup);
        assert!(p.matches(&k.secret_hash));
        assert!(!p.matches(&NewApiKey::generate().secret_hash));
        assert!(!full.contains(&k.secret_hash));
        assert_ne!(NewApiKey::generate().lookup, k.lookup);
    }

    #[test]
    fn other_strings_are_not_keys() {
        let k = NewApiKey::generate();
        let full = k.key.expose().clone();
        for bad in [
            "",
            "junk",
            "sk-llmeta-",
            &full[..full.len() - 1],
            &format!("{full}x"),
            &full.replacen('_', "-", 1),
            &full.replacen("sk-llmeta-", "sk-other-", 1),
            &format!(" {full}"),
            &format!("{}é", &full[..full.len() - 2]),
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(display("abcd"), "sk-…abcd");
    }

    #[test]
    fn names_and_lifetimes_are_checked() {
        assert_eq!(KeyName::parse("  ci bot ").unwrap().as_str(), "ci bot");
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"x".repeat(101)).is_err());
        assert!(KeyName::parse(&"é".repeat(100)).is_ok());
        assert!(KeyName::parse("a\tb").is_err());
        assert!(KeyName::parse("a\u{200b}b").is_err());
        assert_eq!(KeyLifetime::parse_form(""), Ok(None));
        assert_eq!(KeyLifetime::parse_form(" 30 ").unwrap().unwrap().days, 30);
        for bad in ["0", "3651", "-1", "1.5", "ten"] {
            assert!(KeyLifetime::parse_form(bad).is_err(), "{bad}");
        }
        assert_eq!(
            KeyLifetime::days(1).unwrap().expires_ms(1000),
            1000 + 86_400_000
        );
    }
}
