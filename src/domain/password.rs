//! Password rules and argon2id hashing. Hashing is CPU-bound (~30 ms): call it from `spawn_blocking`.

use super::Email;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashSet;
use std::sync::LazyLock;

/// Passwords longer than this are refused before hashing, so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_CHARS: usize = 1000;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The 19,646 most common passwords, from Django's `CommonPasswordValidator` (the seed app's validator).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../assets/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// A password that passed the rules for a new password. Never logged (no `Debug`).
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str, email: &Email) -> Result<NewPassword, String> {
        let chars = raw.chars().count();
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!(
                "Passwords are limited to {MAX_PASSWORD_CHARS} characters."
            ));
        }
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!(
                "Use at least {MIN_PASSWORD_CHARS} characters for your password."
            ));
        }
        let lower = raw.trim().to_lowercase();
        if COMMON.contains(lower.as_str()) {
            return Err("This password is too common. Choose one that is harder to guess.".into());
        }
        if lower == email.as_str() || lower == email.local_part() {
            return Err("Your password cannot be your email address.".into());
        }
        if raw.chars().all(|c| c.is_ascii_digit()) {
            return Err("Your password cannot be entirely numeric.".into());
        }
        Ok(NewPassword(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn hasher() -> Argon2<'static> {
    // OWASP's recommended argon2id settings: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    PasswordHasher::<PasswordHash>::hash_password(&hasher(), password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

/// Checks a password against a stored hash. With `None` (unknown account) it still does the work of one
/// verification against a fixed hash, so an attacker cannot tell unknown emails from wrong passwords by timing.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: LazyLock<String> =
        LazyLock::new(|| hash_password("timing-equaliser").unwrap_or_default());
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY.as_str(), false),
    };
    let ok = PasswordVerifier::<str>::verify_password(&hasher(), password.as_bytes(), hash).is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("ada@example.com").unwrap()
    }

    #[test]
    fn rules() {
        assert!(NewPassword::parse("short", &email()).is_err());
        assert!(NewPassword::parse("password", &email()).is_err());
        assert!(NewPassword::parse("Qwertyuiop", &email()).is_err());
        assert!(NewPassword::parse("ada@example.com", &email()).is_err());
        assert!(NewPassword::parse("12345678901", &email()).is_err());
        assert!(NewPassword::parse(&"x".repeat(1001), &email()).is_err());
        assert!(NewPassword::parse("correct horse battery", &email()).is_ok());
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("wrong horse battery", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
    }
}
