//! Secrets the server stores (providers' API keys added in the administration area), sealed with
//! ChaCha20-Poly1305 under a key derived from the server's secret key: the database alone, or a backup of it,
//! does not reveal them. A sealed value is `v1:` and the base64 of a random 96-bit nonce and the ciphertext
//! with its tag. Changing the secret key makes stored secrets unreadable (they must be entered again).

use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

const PREFIX: &str = "v1:";

pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    /// The sealer for `secret_key` (the server's; a purpose string keeps this key apart from its other uses).
    pub fn new(secret_key: &str) -> Sealer {
        let derived = crate::util::sha256_bytes(&format!("llmeta sealed secrets v1:{secret_key}"));
        let key = UnboundKey::new(&CHACHA20_POLY1305, &derived)
            .expect("a 32-byte key is valid for ChaCha20-Poly1305");
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    pub fn seal(&self, plain: &str) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(PREFIX),
                &mut data,
            )
            .expect("sealing fails only for inputs over 256 GiB");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        )
    }

    /// The secret, or None when `sealed` was not sealed by this key (another secret key, or altered).
    pub fn open(&self, sealed: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed.strip_prefix(PREFIX)?)
            .ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(PREFIX), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Sealer;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_never_shows() {
        let sealer = Sealer::new("server secret");
        let sealed = sealer.seal("sk-live-123456");
        assert!(sealed.starts_with("v1:") && !sealed.contains("sk-live"));
        assert_ne!(
            sealed,
            sealer.seal("sk-live-123456"),
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open(&sealed).as_deref(), Some("sk-live-123456"));
        assert_eq!(Sealer::new("another secret").open(&sealed), None);
        // Altered anywhere: refused.
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(sealer.open(&String::from_utf8(tampered).unwrap()), None);
        assert_eq!(sealer.open("v1:"), None);
        assert_eq!(sealer.open("plain text"), None);
    }
}
