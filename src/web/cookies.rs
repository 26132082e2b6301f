//! Reading and writing the few cookies the app uses, without a cookie jar dependency.

use axum::http::{HeaderMap, HeaderValue, header};

/// The session cookie: a random token; the database keeps only its SHA-256.
pub const SESSION: &str = "llmeta_session";
/// A random value given to every visitor, binding CSRF tokens for forms shown before login.
pub const ANON: &str = "llmeta_csrf";

/// A "device cookie" (OWASP): given to a browser after it signed in with the right password, signed and bound
/// to that account. A browser presenting one is known to the account's owner, so a stranger's failed guesses
/// (which lock the stranger's clients and, past a higher ceiling, all unknown ones) do not lock it out.
pub const DEVICE: &str = "llmeta_device";
/// How long a browser stays known to an account.
pub const DEVICE_MAX_AGE_SECS: i64 = 365 * 86_400;

/// A device cookie as the browser sent it, not yet verified: the account it names, the device's random id,
/// and the signature, which only [`DeviceCookie::verify`] can check against the account's password epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCookie {
    pub user_id: String,
    pub device_id: String,
    mac: String,
}

/// The signature covers the account's current password hash (the "epoch"): any password change or reset
/// gives a new hash (a new salt), so every device cookie issued before it stops counting as a known device,
/// with no column to keep. The hash never leaves the server: only the HMAC under the server key does.
fn device_mac(key: &[u8], user_id: &str, device_id: &str, epoch: Option<&str>) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit as _, Mac as _};
    let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot run.
        <Hmac<sha2::Sha256>>::new_from_slice(b"llmeta").unwrap_or_else(|_| unreachable!())
    });
    mac.update(b"llmeta-device:");
    mac.update(user_id.as_bytes());
    mac.update(b":");
    mac.update(device_id.as_bytes());
    mac.update(b":");
    mac.update(epoch.unwrap_or("").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The cookie value for a device of `user_id` whose password hash is `epoch`: `user_id.device_id.mac`.
pub fn device_value(key: &[u8], user_id: &str, device_id: &str, epoch: Option<&str>) -> String {
    format!(
        "{user_id}.{device_id}.{}",
        device_mac(key, user_id, device_id, epoch)
    )
}

/// The device cookie of this request, if there is a well-formed one (see [`DeviceCookie::verify`]).
pub fn device(headers: &HeaderMap) -> Option<DeviceCookie> {
    let mut parts = get(headers, DEVICE)?.split('.');
    let (user_id, device_id, mac) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user_id.is_empty() || device_id.is_empty() {
        return None;
    }
    Some(DeviceCookie {
        user_id: user_id.to_string(),
        device_id: device_id.to_string(),
        mac: mac.to_string(),
    })
}

impl DeviceCookie {
    /// Whether the server signed this cookie for its account while the account's password hash was `epoch`.
    pub fn verify(&self, key: &[u8], epoch: Option<&str>) -> bool {
        use subtle::ConstantTimeEq as _;
        let expected = device_mac(key, &self.user_id, &self.device_id, epoch);
        bool::from(expected.as_bytes().ct_eq(self.mac.as_bytes()))
    }
}

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
    fn device_cookies_are_signed_and_bound_to_their_account_and_password() {
        let key = b"device key";
        let epoch = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
        let v = device_value(key, "user-1", "dev1", epoch);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("llmeta_device={v}")).unwrap(),
        );
        let c = device(&h).unwrap();
        assert_eq!(
            (c.user_id.as_str(), c.device_id.as_str()),
            ("user-1", "dev1")
        );
        assert!(c.verify(key, epoch));
        assert!(!c.verify(b"another key", epoch));
        assert!(
            !c.verify(key, Some("$argon2id$v=19$m=19456,t=2,p=1$bmV3$aGFzaA")),
            "a new password hash makes it a stranger"
        );
        assert!(!c.verify(key, None));
        let forged = v.replace("user-1", "user-2");
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("llmeta_device={forged}")).unwrap(),
        );
        assert!(!device(&h).unwrap().verify(key, epoch));
    }

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
