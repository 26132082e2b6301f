//! Sign-in providers: `[[auth.oidc]]` tables and `[auth.github]` in `llmeta.toml`, and one provider of each
//! kind by environment (`LLMETA_OIDC_*`, `LLMETA_GOOGLE_*`, `LLMETA_GITHUB_*`), the environment winning over a
//! file provider of the same name.
//!
//! Issuers and GitHub addresses must be https, except on loopback hosts (a local identity provider, tests):
//! sign-in codes and client secrets must not cross a network in the clear.

use super::{ConfigError, invalid};
use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;

/// Google's issuer, for the `LLMETA_GOOGLE_*` shortcut.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
const DEFAULT_TIMEOUT_SECS: u64 = 10;

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub oidc: Vec<OidcConfig>,
    pub github: Option<GithubConfig>,
    /// How long one call to a provider (discovery, token, user info) may take before the person is told the
    /// provider is unavailable.
    pub timeout: Duration,
}

impl AuthConfig {
    pub fn is_empty(&self) -> bool {
        self.oidc.is_empty() && self.github.is_none()
    }
}

/// What every provider has: its URL name, its button's label, and who may use it how.
#[derive(Debug, Clone)]
pub struct ProviderRules {
    /// In `/auth/{name}/login` and `/auth/{name}/callback`.
    pub name: String,
    pub display_name: String,
    /// Only people whose verified email is in one of these domains may sign in (empty: anyone).
    pub allowed_domains: Vec<String>,
    /// A verified email equal to an existing account's links to it at once, without that person signing in
    /// first. Only for providers that own their users' addresses (a company's identity provider).
    pub auto_link: bool,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub rules: ProviderRules,
    pub issuer: String,
    pub client_id: String,
    /// None: a public client (PKCE only).
    pub client_secret: Option<Secret<String>>,
    pub scopes: Vec<String>,
    /// Members of this group (the `groups` claim) are made administrators when they sign in.
    pub admin_group: Option<String>,
    /// Take an email as verified when this provider sends no `email_verified` claim with it, for providers that
    /// own their users' addresses but never send the claim (Entra ID); an explicit `false` still counts. Without
    /// it such addresses make no account.
    pub trust_email: bool,
}

#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub rules: ProviderRules,
    pub client_id: String,
    pub client_secret: Secret<String>,
    /// Where people sign in (`https://github.com`, or a GitHub Enterprise server).
    pub web_url: String,
    /// The REST API (`https://api.github.com`, or `https://HOST/api/v3`).
    pub api_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    #[serde(default)]
    oidc: Vec<FileOidc>,
    github: Option<FileGithub>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOidc {
    name: String,
    display_name: Option<String>,
    issuer: String,
    client_id: String,
    client_secret_env: Option<String>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    allowed_domains: Vec<String>,
    admin_group: Option<String>,
    #[serde(default)]
    auto_link: bool,
    #[serde(default)]
    trust_email: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGithub {
    display_name: Option<String>,
    client_id: String,
    client_secret_env: String,
    web_url: Option<String>,
    api_url: Option<String>,
    #[serde(default)]
    allowed_domains: Vec<String>,
    #[serde(default)]
    auto_link: bool,
}

/// Reads the providers from the file's `[auth]` and the environment.
pub(super) fn load(
    file: Option<FileAuth>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthConfig, ConfigError> {
    let var = |n: &str| {
        env(n)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let file = file.unwrap_or_default();
    let mut oidc = Vec::new();
    for (i, f) in file.oidc.into_iter().enumerate() {
        let at = |key: &str| format!("auth.oidc[{i}].{key}");
        let client_secret = match &f.client_secret_env {
            Some(name) => Some(Secret::new(var(name).ok_or_else(|| {
                invalid(
                    &at("client_secret_env"),
                    format!("the variable {name} it names is not set"),
                )
            })?)),
            None => None,
        };
        oidc.push(OidcConfig {
            rules: rules(
                &at("name"),
                &f.name,
                f.display_name,
                f.allowed_domains,
                f.auto_link,
            )?,
            issuer: web_address(&at("issuer"), &f.issuer)?,
            client_id: non_empty(&at("client_id"), f.client_id)?,
            client_secret,
            scopes: scopes(f.scopes),
            admin_group: f.admin_group.filter(|g| !g.trim().is_empty()),
            trust_email: f.trust_email,
        });
    }
    if let Some(issuer) = var("LLMETA_OIDC_ISSUER") {
        let client_id = var("LLMETA_OIDC_CLIENT_ID").ok_or_else(|| {
            invalid(
                "LLMETA_OIDC_CLIENT_ID",
                "must be set with LLMETA_OIDC_ISSUER",
            )
        })?;
        let provider = OidcConfig {
            rules: rules(
                "LLMETA_OIDC_NAME",
                "oidc",
                Some(var("LLMETA_OIDC_NAME").unwrap_or_else(|| "Single sign-on".into())),
                list(var("LLMETA_OIDC_ALLOWED_DOMAINS")),
                flag("LLMETA_OIDC_AUTO_LINK", var("LLMETA_OIDC_AUTO_LINK"))?,
            )?,
            issuer: web_address("LLMETA_OIDC_ISSUER", &issuer)?,
            client_id,
            client_secret: var("LLMETA_OIDC_CLIENT_SECRET").map(Secret::new),
            scopes: scopes(var("LLMETA_OIDC_SCOPES").map(|s| list(Some(s)))),
            admin_group: var("LLMETA_OIDC_ADMIN_GROUP"),
            trust_email: flag("LLMETA_OIDC_TRUST_EMAIL", var("LLMETA_OIDC_TRUST_EMAIL"))?,
        };
        oidc.retain(|p| p.rules.name != "oidc");
        oidc.push(provider);
    }
    if let Some(client_id) = var("LLMETA_GOOGLE_CLIENT_ID") {
        let secret = var("LLMETA_GOOGLE_CLIENT_SECRET").ok_or_else(|| {
            invalid(
                "LLMETA_GOOGLE_CLIENT_SECRET",
                "must be set with LLMETA_GOOGLE_CLIENT_ID",
            )
        })?;
        oidc.retain(|p| p.rules.name != "google");
        oidc.push(OidcConfig {
            rules: rules(
                "LLMETA_GOOGLE_CLIENT_ID",
                "google",
                Some("Google".into()),
                list(var("LLMETA_GOOGLE_ALLOWED_DOMAINS")),
                flag("LLMETA_GOOGLE_AUTO_LINK", var("LLMETA_GOOGLE_AUTO_LINK"))?,
            )?,
            issuer: GOOGLE_ISSUER.into(),
            client_id,
            client_secret: Some(Secret::new(secret)),
            scopes: scopes(None),
            admin_group: None,
            trust_email: false,
        });
    }

    let mut github = match file.github {
        Some(f) => Some(GithubConfig {
            rules: rules(
                "auth.github",
                "github",
                Some(f.display_name.unwrap_or_else(|| "GitHub".into())),
                f.allowed_domains,
                f.auto_link,
            )?,
            client_id: non_empty("auth.github.client_id", f.client_id)?,
            client_secret: Secret::new(var(&f.client_secret_env).ok_or_else(|| {
                invalid(
                    "auth.github.client_secret_env",
                    format!("the variable {} it names is not set", f.client_secret_env),
                )
            })?),
            web_url: match f.web_url {
                Some(u) => base_address("auth.github.web_url", &u)?,
                None => "https://github.com".into(),
            },
            api_url: match f.api_url {
                Some(u) => base_address("auth.github.api_url", &u)?,
                None => "https://api.github.com".into(),
            },
        }),
        None => None,
    };
    if let Some(client_id) = var("LLMETA_GITHUB_CLIENT_ID") {
        let secret = var("LLMETA_GITHUB_CLIENT_SECRET").ok_or_else(|| {
            invalid(
                "LLMETA_GITHUB_CLIENT_SECRET",
                "must be set with LLMETA_GITHUB_CLIENT_ID",
            )
        })?;
        github = Some(GithubConfig {
            rules: rules(
                "LLMETA_GITHUB_CLIENT_ID",
                "github",
                Some("GitHub".into()),
                list(var("LLMETA_GITHUB_ALLOWED_DOMAINS")),
                flag("LLMETA_GITHUB_AUTO_LINK", var("LLMETA_GITHUB_AUTO_LINK"))?,
            )?,
            client_id,
            client_secret: Secret::new(secret),
            web_url: match var("LLMETA_GITHUB_URL") {
                Some(u) => base_address("LLMETA_GITHUB_URL", &u)?,
                None => "https://github.com".into(),
            },
            api_url: match var("LLMETA_GITHUB_API_URL") {
                Some(u) => base_address("LLMETA_GITHUB_API_URL", &u)?,
                None => "https://api.github.com".into(),
            },
        });
    }

    let mut seen = std::collections::HashSet::new();
    for p in &oidc {
        if p.rules.name == "github" || !seen.insert(p.rules.name.clone()) {
            return Err(invalid(
                "auth.oidc",
                format!(
                    "two providers are named '{}' (names must be unique, and 'github' is GitHub's)",
                    p.rules.name
                ),
            ));
        }
    }
    let timeout = match var("LLMETA_SSO_TIMEOUT_SECS")
        .map(|v| ("LLMETA_SSO_TIMEOUT_SECS".to_string(), v))
        .or_else(|| {
            file.timeout_secs
                .map(|n| ("auth.timeout_secs".to_string(), n.to_string()))
        }) {
        Some((name, v)) => Duration::from_secs(
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=120).contains(n))
                .ok_or_else(|| {
                    invalid(
                        &name,
                        format!("'{v}' is not a number of seconds from 1 to 120"),
                    )
                })?,
        ),
        None => Duration::from_secs(DEFAULT_TIMEOUT_SECS),
    };
    Ok(AuthConfig {
        oidc,
        github,
        timeout,
    })
}

/// The providers as TOML tables, secrets redacted (for `llmeta check-config`).
pub(super) fn describe(auth: &AuthConfig, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n[auth]\ntimeout_secs = {}", auth.timeout.as_secs());
    let common = |out: &mut String, r: &ProviderRules| {
        let _ = writeln!(out, "display_name = {:?}", r.display_name);
        let _ = writeln!(out, "allowed_domains = {:?}", r.allowed_domains);
        let _ = writeln!(out, "auto_link = {}", r.auto_link);
    };
    for p in &auth.oidc {
        let _ = writeln!(out, "\n[[auth.oidc]]\nname = {:?}", p.rules.name);
        common(out, &p.rules);
        let _ = writeln!(out, "issuer = {:?}", p.issuer);
        let _ = writeln!(out, "client_id = {:?}", p.client_id);
        let _ = writeln!(
            out,
            "client_secret = \"{}\"",
            if p.client_secret.is_some() {
                "[redacted]"
            } else {
                "(none: a public client)"
            }
        );
        let _ = writeln!(out, "scopes = {:?}", p.scopes);
        let _ = writeln!(
            out,
            "admin_group = {:?}",
            p.admin_group.as_deref().unwrap_or("")
        );
    }
    if let Some(g) = &auth.github {
        let _ = writeln!(out, "\n[auth.github]");
        common(out, &g.rules);
        let _ = writeln!(out, "client_id = {:?}", g.client_id);
        let _ = writeln!(out, "client_secret = \"[redacted]\"");
        let _ = writeln!(out, "web_url = {:?}", g.web_url);
        let _ = writeln!(out, "api_url = {:?}", g.api_url);
    }
}

fn rules(
    setting: &str,
    name: &str,
    display_name: Option<String>,
    allowed_domains: Vec<String>,
    auto_link: bool,
) -> Result<ProviderRules, ConfigError> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            setting,
            format!(
                "'{name}' must be 1 to 32 lower-case letters, digits or '-' (it is used in URLs)"
            ),
        ));
    }
    Ok(ProviderRules {
        display_name: display_name
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.to_string()),
        name: name.to_string(),
        allowed_domains: allowed_domains
            .into_iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect(),
        auto_link,
    })
}

/// An https address, or http to a loopback host; without a trailing slash unless it is the whole path.
fn web_address(setting: &str, raw: &str) -> Result<String, ConfigError> {
    let raw = raw.trim();
    let url = reqwest::Url::parse(raw).map_err(|_| {
        invalid(
            setting,
            format!("'{raw}' is not a URL such as https://id.example.com"),
        )
    })?;
    let loopback = url.host_str().is_some_and(super::is_loopback_host);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(invalid(
                setting,
                format!("'{raw}' must be an https:// address (http:// only to this machine)"),
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() || url.host_str().is_none() {
        return Err(invalid(
            setting,
            format!("'{raw}' must be an address without ? or #"),
        ));
    }
    Ok(raw.to_string())
}

/// [`web_address`] without a trailing slash: GitHub's identities are stored under the web address, which must
/// not change when an operator adds or drops a slash.
fn base_address(setting: &str, raw: &str) -> Result<String, ConfigError> {
    Ok(web_address(setting, raw)?.trim_end_matches('/').to_string())
}

fn non_empty(setting: &str, v: String) -> Result<String, ConfigError> {
    let v = v.trim().to_string();
    if v.is_empty() {
        return Err(invalid(setting, "must not be empty"));
    }
    Ok(v)
}

fn scopes(configured: Option<Vec<String>>) -> Vec<String> {
    let mut scopes: Vec<String> = configured
        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect())
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let mut seen = std::collections::HashSet::new();
    scopes.retain(|s| seen.insert(s.clone()));
    scopes
}

/// A list written with commas or spaces.
fn list(v: Option<String>) -> Vec<String> {
    v.map(|v| {
        v.split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn flag(setting: &str, v: Option<String>) -> Result<bool, ConfigError> {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => Err(invalid(setting, format!("'{other}' must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn providers_from_the_environment() {
        let env = env_of(&[
            ("LLMETA_OIDC_ISSUER", "https://id.example.com/realms/main"),
            ("LLMETA_OIDC_CLIENT_ID", "llmeta"),
            ("LLMETA_OIDC_CLIENT_SECRET", "s3cret"),
            ("LLMETA_OIDC_NAME", "Company SSO"),
            ("LLMETA_GOOGLE_CLIENT_ID", "g-id"),
            ("LLMETA_GOOGLE_CLIENT_SECRET", "g-secret"),
            ("LLMETA_GITHUB_CLIENT_ID", "gh-id"),
            ("LLMETA_GITHUB_CLIENT_SECRET", "gh-secret"),
        ]);
        let a = load(None, &env).unwrap();
        assert_eq!(a.oidc.len(), 2);
        assert_eq!(a.oidc[0].rules.name, "oidc");
        assert_eq!(a.oidc[0].rules.display_name, "Company SSO");
        assert_eq!(a.oidc[0].scopes, ["openid", "email", "profile"]);
        assert_eq!(a.oidc[1].issuer, GOOGLE_ISSUER);
        let gh = a.github.unwrap();
        assert_eq!(
            (gh.web_url.as_str(), gh.api_url.as_str()),
            ("https://github.com", "https://api.github.com")
        );
        assert_eq!(a.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    }

    #[test]
    fn issuers_must_be_https_except_on_this_machine() {
        for bad in [
            "http://id.example.com",
            "ftp://id.example.com",
            "id.example.com",
        ] {
            let e = web_address("LLMETA_OIDC_ISSUER", bad).unwrap_err();
            assert_eq!(e.setting, "LLMETA_OIDC_ISSUER");
        }
        for good in [
            "https://id.example.com",
            "http://127.0.0.1:9000",
            "http://localhost:8080/realms/x",
            "http://[::1]:1",
        ] {
            assert!(web_address("x", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_named_secret_variable_must_be_set_and_names_must_be_unique() {
        let file: FileAuth = toml::from_str(
            "[[oidc]]\nname = \"corp\"\nissuer = \"https://id.example.com\"\nclient_id = \"x\"\nclient_secret_env = \"CORP_SECRET\"\n",
        )
        .unwrap();
        let e = load(Some(file), &|_| None).unwrap_err();
        assert!(
            e.setting.contains("client_secret_env") && e.message.contains("CORP_SECRET"),
            "{e}"
        );
        let file: FileAuth = toml::from_str(
            "[[oidc]]\nname = \"corp\"\nissuer = \"https://a.example.com\"\nclient_id = \"x\"\n\
             [[oidc]]\nname = \"corp\"\nissuer = \"https://b.example.com\"\nclient_id = \"y\"\n",
        )
        .unwrap();
        assert!(load(Some(file), &|_| None).is_err());
        let file: FileAuth =
            toml::from_str("[[oidc]]\nname = \"Bad Name\"\nissuer = \"https://a.example.com\"\nclient_id = \"x\"\n").unwrap();
        assert!(load(Some(file), &|_| None).is_err());
    }

    #[test]
    fn the_file_gives_scopes_domains_groups_and_github_enterprise() {
        let file: FileAuth = toml::from_str(
            "timeout_secs = 3\n[[oidc]]\nname = \"kc\"\ndisplay_name = \"Keycloak\"\nissuer = \"https://kc.example.com/realms/a\"\n\
             client_id = \"llmeta\"\nscopes = [\"email\", \"groups\"]\nallowed_domains = [\"@Example.com\"]\nadmin_group = \"admins\"\n\
             auto_link = true\n[github]\nclient_id = \"id\"\nclient_secret_env = \"GH\"\nweb_url = \"https://ghe.example.com\"\n\
             api_url = \"https://ghe.example.com/api/v3\"\n",
        )
        .unwrap();
        let a = load(Some(file), &|n| (n == "GH").then(|| "secret".to_string())).unwrap();
        let kc = &a.oidc[0];
        assert_eq!(kc.scopes, ["openid", "email", "groups"]);
        assert_eq!(kc.rules.allowed_domains, ["example.com"]);
        assert!(kc.rules.auto_link && kc.client_secret.is_none());
        assert_eq!(kc.admin_group.as_deref(), Some("admins"));
        assert!(!kc.trust_email);
        assert_eq!(a.github.unwrap().api_url, "https://ghe.example.com/api/v3");
        assert_eq!(a.timeout, Duration::from_secs(3));
    }
}
