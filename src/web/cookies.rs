//! Reading and writing the few cookies the app uses, without a cookie jar dependency.

use axum::http::{HeaderMap, HeaderValue, header};

/// The session cookie: a random token; the database keeps only its SHA-256.
pub const SESSION: &str = "llmeta_session";
/// A random value given to every visitor, binding CSRF tokens for forms shown before login.
pub const ANON: &str = "llmeta_csrf";

/// The value of cookie `name`, from any `Cookie` header.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: always `HttpOnly`, `SameSite=Lax`, `Path=/`; `Secure` when served over https.
pub fn set(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    // Names and values are ours (base64url tokens), so this cannot fail; fall back to an expired cookie anyway.
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear(name: &str, secure: bool) -> HeaderValue {
    set(name, "", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; llmeta_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(get(&h, SESSION), Some("xyz"));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "c"), None);
        assert!(
            set("n", "v", 10, true)
                .to_str()
                .unwrap()
                .ends_with("Secure")
        );
    }
}
