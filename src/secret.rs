//! A wrapper that keeps secrets out of logs, errors and `check-config` output.

use std::fmt;

/// A value whose `Debug` and `Display` never show it. Read it with [`Secret::expose`], at the one
/// place that needs the real value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The real value. Every call site is a place where the secret may leave the process.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A database URL with its password replaced, for logs and `check-config`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:[redacted]")
            } else {
                user.to_string()
            };
            format!("{}{}@{}", &url[..scheme_end + 3], masked, &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

/// Provider text fit to store and show: `secret` (a provider key, when at least 8 characters) and anything
/// shaped like an API key or bearer token replaced by `[redacted]`, then cut to `max_chars` characters (with an
/// ellipsis). Providers echo keys in error messages, and an error message lands in the call record, the page
/// and the log.
pub fn scrub(text: &str, secret: Option<&str>, max_chars: usize) -> String {
    let mut out = text.to_string();
    match secret {
        Some(key) if key.len() >= 8 => out = out.replace(key, "[redacted]"),
        // A short key (local servers take any) is replaced where it stands as a word of its own: replacing it
        // inside other words would garble the message, and it cannot hide there anyway.
        Some(key) if !key.is_empty() => out = replace_word(&out, key, "[redacted]"),
        _ => {}
    }
    let out = out
        .split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .map(|word| {
            let token = word
                .trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                .trim_end_matches(['.', ',', ';', ')']);
            if looks_like_key(token) {
                format!("[redacted]{}", &word[token.len()..])
            } else {
                word.to_string()
            }
        })
        .collect::<String>();
    if out.chars().count() <= max_chars {
        return out;
    }
    let mut cut: String = out.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` with each occurrence of `word` that no letter, digit, `-` or `_` touches replaced by `with`.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let joins = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(word) {
        if at < last {
            continue;
        }
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !joins(before) && !joins(after) {
            out.push_str(&text[last..at]);
            out.push_str(with);
            last = at + word.len();
        }
    }
    out.push_str(&text[last..]);
    out
}

/// `sk-…`-style keys (OpenAI, Anthropic, OpenRouter…): a known prefix and a long run of key characters.
fn looks_like_key(word: &str) -> bool {
    let body = ["sk-", "sk_", "rk-", "pk-"]
        .iter()
        .find_map(|p| word.strip_prefix(p));
    body.is_some_and(|b| {
        b.len() >= 16
            && b.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_is_scrubbed_and_bounded() {
        let key = "local-key-0123456789";
        assert_eq!(
            scrub(
                &format!("bad key {key}: sk-abcdefghijklmnop1234, retry"),
                Some(key),
                100
            ),
            "bad key [redacted]: [redacted], retry"
        );
        assert_eq!(scrub("short sk-abc stays", None, 100), "short sk-abc stays");
        // A short key goes where it is a word of its own, not inside other words.
        assert_eq!(
            scrub(
                "invalid key 'abc1' (abc12, xabc1 and abc1)",
                Some("abc1"),
                100
            ),
            "invalid key '[redacted]' (abc12, xabc1 and [redacted])"
        );
        let long = "é".repeat(5000);
        let cut = scrub(&long, None, 1000);
        assert_eq!(cut.chars().count(), 1000);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            redact_url("postgres://bob:pw@db:5432/x?sslmode=require"),
            "postgres://bob:[redacted]@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(
            redact_url("sqlite://data/llmeta.db"),
            "sqlite://data/llmeta.db"
        );
    }
}
