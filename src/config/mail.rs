//! Outgoing mail settings: `LLMETA_SMTP_URL` (or `smtp_url`) and `LLMETA_MAIL_FROM` (or `mail_from`).
//!
//! `smtp://user:pass@host:587` sends with STARTTLS (required: a server that does not offer it is refused),
//! `smtps://user:pass@host:465` with TLS from the first byte. A plain connection, without TLS, is only made to
//! a loopback host (a local relay or a test server): credentials must never cross a network in the clear.

use crate::secret::Secret;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// None: mails are written to the log.
    pub smtp: Option<SmtpConfig>,
    /// The sender (`From`), an address or `Name <address>`.
    pub from: String,
    /// How long a mail the server did not take is tried again.
    pub retry_for: Duration,
    /// Whether a new account's email address must be verified (`LLMETA_EMAIL_VERIFICATION`).
    pub verification: Verification,
}

/// `off`: no verification mail; `optional` (default): one is sent, nothing waits for it; `mandatory`: an
/// account made by sign-up cannot chat or use the API until its link is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    Off,
    #[default]
    Optional,
    Mandatory,
}

impl Verification {
    pub fn parse(v: &str) -> Option<Verification> {
        match v.trim().to_ascii_lowercase().as_str() {
            "off" => Some(Verification::Off),
            "optional" => Some(Verification::Optional),
            "mandatory" => Some(Verification::Mandatory),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Off => "off",
            Verification::Optional => "optional",
            Verification::Mandatory => "mandatory",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<Secret<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` to another host: STARTTLS, required.
    StartTls,
    /// `smtp://` to a loopback host: no TLS.
    Plain,
}

pub const DEFAULT_FROM: &str = "llmeta <llmeta@localhost>";
const DEFAULT_RETRY_SECS: u64 = 3600;
const MAX_RETRY_SECS: u64 = 7 * 24 * 3600;

/// Reads an SMTP URL; the error is a sentence for the person who set it (never echoing the password).
pub fn parse_smtp_url(raw: &str) -> Result<SmtpConfig, String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| {
        "is not a URL such as smtp://user:password@mail.example.com:587".to_string()
    })?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("names no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let loopback = super::is_loopback_host(&host);
    let (tls, default_port) = match url.scheme() {
        "smtps" => (SmtpTls::Implicit, 465),
        "smtp" if loopback => (SmtpTls::Plain, 25),
        "smtp" => (SmtpTls::StartTls, 587),
        other => {
            return Err(format!(
                "has the scheme '{other}'; use smtp:// (STARTTLS) or smtps:// (TLS)"
            ));
        }
    };
    if url.path() != "" && url.path() != "/" || url.query().is_some() {
        return Err("must be just smtp(s)://[user:password@]host[:port]".into());
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "has a user name or password that is not valid UTF-8".to_string())
    };
    let user = Some(decode(url.username())?).filter(|u| !u.is_empty());
    let password = url.password().map(decode).transpose()?.map(Secret::new);
    if password.is_some() != user.is_some() {
        return Err("needs both a user name and a password, or neither".into());
    }
    Ok(SmtpConfig {
        port: url.port().unwrap_or(default_port),
        host,
        tls,
        user,
        password,
    })
}

/// Builds the settings from their raw values (environment first, then the file; see `Config::load`).
pub fn load(
    smtp_url: Option<(String, String)>,
    from: Option<(String, String)>,
    retry_secs: Option<(String, String)>,
    verification: Option<(String, String)>,
) -> Result<MailConfig, (String, String)> {
    let verification = match verification {
        Some((name, v)) => Verification::parse(&v)
            .ok_or_else(|| (name, format!("'{v}' is not off, optional or mandatory")))?,
        None => Verification::default(),
    };
    let smtp = match smtp_url {
        Some((name, v)) if !v.trim().is_empty() => Some(parse_smtp_url(&v).map_err(|e| (name, e))?),
        _ => None,
    };
    let from = match from {
        Some((name, v)) => {
            let v = v.trim().to_string();
            if v.parse::<lettre::message::Mailbox>().is_err() {
                return Err((
                    name,
                    format!(
                        "'{v}' is not an address such as llmeta@example.com or \"llmeta <llmeta@example.com>\""
                    ),
                ));
            }
            v
        }
        None => DEFAULT_FROM.to_string(),
    };
    let retry_for = match retry_secs {
        Some((name, v)) => Duration::from_secs(
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= MAX_RETRY_SECS)
                .ok_or_else(|| {
                    (
                        name,
                        format!(
                            "'{v}' is not a number of seconds from 0 to {MAX_RETRY_SECS} (a week)"
                        ),
                    )
                })?,
        ),
        None => Duration::from_secs(DEFAULT_RETRY_SECS),
    };
    Ok(MailConfig {
        smtp,
        from,
        retry_for,
        verification,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_tls_and_never_send_credentials_in_the_clear_off_this_host() {
        let c = parse_smtp_url("smtp://ada:p%40ss@mail.example.com").unwrap();
        assert_eq!((c.tls, c.port), (SmtpTls::StartTls, 587));
        assert_eq!(c.user.as_deref(), Some("ada"));
        assert_eq!(c.password.unwrap().expose(), "p@ss");
        let c = parse_smtp_url("smtps://mail.example.com").unwrap();
        assert_eq!((c.tls, c.port), (SmtpTls::Implicit, 465));
        let c = parse_smtp_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((c.tls, c.port), (SmtpTls::Plain, 2525));
        assert_eq!(
            parse_smtp_url("smtp://[::1]:25").unwrap().tls,
            SmtpTls::Plain
        );
        assert_eq!(
            parse_smtp_url("smtp://localhost").unwrap().tls,
            SmtpTls::Plain
        );

        for bad in [
            "http://mail.example.com",
            "mail.example.com",
            "smtp://:pw@h",
            "smtp://h/x",
        ] {
            let e = parse_smtp_url(bad).unwrap_err();
            assert!(!e.contains("pw"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_sender_must_be_an_address() {
        let named = |v: &str| Some(("LLMETA_MAIL_FROM".to_string(), v.to_string()));
        assert!(load(None, named("llmeta <l@example.com>"), None, None).is_ok());
        assert!(load(None, named("not an address"), None, None).is_err());
        assert!(
            load(
                None,
                named("a@example.com\r\nBcc: x@evil.example"),
                None,
                None
            )
            .is_err()
        );
        assert_eq!(load(None, None, None, None).unwrap().from, DEFAULT_FROM);
        let secs = |v: &str| {
            load(
                None,
                None,
                Some(("LLMETA_MAIL_RETRY_SECS".into(), v.into())),
                None,
            )
        };
        let verification = |v: &str| {
            load(
                None,
                None,
                None,
                Some(("LLMETA_EMAIL_VERIFICATION".into(), v.into())),
            )
        };
        assert_eq!(
            verification("Mandatory").unwrap().verification,
            Verification::Mandatory
        );
        assert!(verification("sometimes").is_err());
        assert_eq!(
            load(None, None, None, None).unwrap().verification,
            Verification::Optional
        );
        assert!(secs("604800").is_ok());
        assert!(
            secs("99999999999999999").is_err(),
            "capped: a deadline that far would overflow"
        );
    }
}
