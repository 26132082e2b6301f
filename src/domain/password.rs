//! Password rules and argon2id hashing. Hashing is CPU-bound (~30 ms): call it from `spawn_blocking`.

use super::Email;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(format!(
                "Passwords are limited to {MAX_PASSWORD_CHARS} characters."
            ));
        }
        // NULs, tabs, newlines and other control characters are never typed on purpose, and some systems cut
        // a password at a NUL, which would make `x` + 7 NULs the one-character password `x`.
        if raw.chars().any(char::is_control) {
            return Err(
                "Your password cannot contain control characters (such as tabs, line breaks or NUL)."
                    .into(),
            );
        }
        if raw
            .chars()
            .all(|c| c.is_whitespace() || is_invisible(c) || is_combining_mark(c))
        {
            return Err(
                "Your password cannot consist only of spaces or invisible characters.".into(),
            );
        }
        // Invisible characters (zero-width spaces, joiners, direction marks) are allowed, e.g. inside emoji
        // sequences, but they add nothing anyone could see or remember, so they do not count toward the length.
        // Nor do combining marks: an accent belongs to the letter before it, and alone it shows as nothing.
        let chars = raw
            .chars()
            .filter(|c| !is_invisible(*c) && !is_combining_mark(*c))
            .count();
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

/// Characters that render as nothing: zero-width spaces and joiners, direction marks and isolates, word
/// joiners and invisible operators, the BOM, soft hyphen, Hangul fillers, variation selectors and tag characters.
/// (The standard library has no Unicode general category; this is the default-ignorable set that can be typed.)
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Combining marks (accents, diacritics) of the blocks made for them: on their own they draw on nothing.
pub fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{0483}'..='\u{0489}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// OWASP's recommended argon2id settings: 19 MiB, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

fn params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).unwrap_or_default()
}

/// The working memory of one argon2 computation (19 MiB), kept and reused across hashes.
///
/// argon2's own `hash_password`/`verify_password` allocate it anew each time, 64-byte aligned; glibc serves
/// such an aligned allocation from fresh memory rather than from the block just freed, so every sign-in left
/// another 19 MiB resident (measured: +19.5 MB per sign-in, 240 MB after 60 sequential ones). A caller that
/// keeps a `HashMemory` per concurrent hash (see `hashing::HashPool`) bounds the memory at that many blocks.
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    pub fn new() -> HashMemory {
        HashMemory(vec![Block::default(); params().block_count()])
    }

    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        // A stored hash with a larger memory cost (older settings) grows the buffer once.
        if self.0.len() < params.block_count() {
            self.0.resize(params.block_count(), Block::default());
        }
        &mut self.0[..params.block_count()]
    }
}

/// Never prints the blocks: 19 MiB derived from someone's password.
impl std::fmt::Debug for HashMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashMemory({} blocks)", self.0.len())
    }
}

impl Default for HashMemory {
    fn default() -> Self {
        Self::new()
    }
}

/// An argon2id PHC string with a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    hash_password_in(password, &mut HashMemory::new())
}

/// [`hash_password`] in the given working memory.
pub fn hash_password_in(password: &str, mem: &mut HashMemory) -> anyhow::Result<String> {
    use base64::Engine as _;
    use rand::RngCore as _;
    let params = params();
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, mem.blocks(&params))
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))?;
    // The PHC string format (B64 = standard alphabet, no padding), as argon2's own hasher writes it.
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    Ok(format!(
        "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}${}${}",
        b64.encode(salt),
        b64.encode(out)
    ))
}

/// A fixed argon2id hash string with the same settings (no password is known to match it): unknown accounts
/// are checked against it, which costs what checking a real account costs.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$dGltaW5nLWVxdWFsaXNlcg$QRpiXqJdnDzdAKZr8F2cJ84Vdzw+7jWXIEmx2R8Vo6k";

/// Checks a password against a stored hash. With `None` (unknown account) it still does the work of one
/// verification against a fixed hash, so an attacker cannot tell unknown emails from wrong passwords by timing.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    verify_password_in(password, stored, &mut HashMemory::new())
}

/// [`verify_password`] in the given working memory.
pub fn verify_password_in(password: &str, stored: Option<&str>, mem: &mut HashMemory) -> bool {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH, false),
    };
    check(password, hash, mem).unwrap_or(false) && real
}

/// What `PasswordVerifier::verify_password` does, with our working memory: parse the PHC string, recompute
/// with its algorithm, version, parameters and salt, and compare in constant time.
fn check(password: &str, phc: &str, mem: &mut HashMemory) -> Option<bool> {
    use subtle::ConstantTimeEq as _;
    let parsed = PasswordHash::new(phc).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let salt = parsed.salt?;
    let expected = parsed.hash?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, mem.blocks(&params))
        .ok()?;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
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
    fn blank_invisible_and_control_passwords_are_refused() {
        let cases = [
            " ".repeat(8),
            "\u{200B}".repeat(8),
            format!("x{}", "\0".repeat(7)),
            "\u{3000}\u{00A0} \u{2003}\u{200D}\u{FEFF}\u{2060}\u{200E}".to_string(),
            "abc\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}".to_string(),
            "tab\there ok".to_string(),
            "line\nbreak here".to_string(),
            "delete\u{7F}this".to_string(),
            // Braille blanks and lone combining accents show nothing either.
            "\u{2800}".repeat(8),
            "\u{0301}".repeat(8),
            "abc\u{0301}\u{0301}\u{0301}\u{0301}\u{0301}".to_string(),
        ];
        for raw in cases {
            assert!(NewPassword::parse(&raw, &email()).is_err(), "{raw:?}");
        }
        // Spaces inside a passphrase, and a joiner inside an emoji sequence, are fine.
        assert!(NewPassword::parse("  four words  with spaces ", &email()).is_ok());
        assert!(NewPassword::parse("family \u{1F468}\u{200D}\u{1F469} tree", &email()).is_ok());
        // Accented letters written with combining marks count once each.
        assert!(NewPassword::parse("cafe\u{0301} cre\u{0300}me", &email()).is_ok());
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("wrong horse battery", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
        // The strings are standard PHC that argon2's own verifier accepts, and the other way round.
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        argon
            .verify_password(b"correct horse battery", &PasswordHash::new(&h).unwrap())
            .unwrap();
        let theirs = argon.hash_password(b"their horse").unwrap().to_string();
        assert!(verify_password("their horse", Some(&theirs)));
        assert!(!verify_password("our horse", Some(&theirs)));
        // The timing equaliser is a real hash of these settings.
        assert!(check("timing-equaliser", DUMMY_HASH, &mut HashMemory::new()).is_some());
    }
}
