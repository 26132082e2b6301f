//! Sign-in with other providers: any OpenID Connect provider ([`oidc`]) and GitHub ([`github`]).
//!
//! Both run the authorization code flow with PKCE (S256) and a `state`; OpenID Connect adds a `nonce` and the
//! ID token's checks. This module only talks to providers: it turns a callback into a checked [`Identity`].
//! What an identity may do with accounts (sign in, sign up, link) is `accounts::identities`; the flow's state
//! is kept by `db::sso_flows`; the pages are `web::pages::sso`.

pub mod github;
pub mod oidc;

use crate::config::auth::{AuthConfig, ProviderRules};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Who a provider says signed in, after every check passed.
#[derive(Debug, Clone)]
pub struct Identity {
    /// With `subject`, the identity: the OpenID issuer, or GitHub's web address.
    pub issuer: String,
    pub subject: String,
    /// Lower-cased; None when the provider gave none.
    pub email: Option<String>,
    /// The provider vouches the address is this person's (`email_verified`, or GitHub's verified flag).
    pub email_verified: bool,
    pub name: Option<String>,
    /// The `groups` claim, for `admin_group`.
    pub groups: Vec<String>,
}

/// Why a sign-in with a provider did not give an identity.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// The callback or the provider's answer does not check out: a missing, stale or reused `state`, a code
    /// the provider refused, an ID token with a wrong signature or claim. 400; the reason is logged.
    #[error("{0}")]
    Invalid(String),
    /// The person declined at the provider (`error=access_denied`).
    #[error("access denied at the provider")]
    Denied,
    /// The provider could not be reached within the timeout, or answered with a server error. 503.
    #[error("{0}")]
    Unavailable(String),
}

/// Where a sign-in starts: the provider's authorization URL for this flow.
pub struct Authorization {
    pub url: String,
}

/// The secrets one flow is started and finished with.
pub struct FlowSecrets {
    pub state: String,
    pub pkce_verifier: String,
    pub nonce: String,
}

impl FlowSecrets {
    pub fn new() -> FlowSecrets {
        FlowSecrets {
            state: crate::util::random_token(32),
            // 43 characters of base64url: within RFC 7636's alphabet and length.
            pkce_verifier: crate::util::random_token(32),
            nonce: crate::util::random_token(32),
        }
    }

    /// The S256 code challenge of the verifier.
    pub fn pkce_challenge(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(self.pkce_verifier.as_bytes()))
    }
}

impl Default for FlowSecrets {
    fn default() -> Self {
        Self::new()
    }
}

/// One configured provider, and how long one of its sign-in steps may take in all (each step makes up to
/// four calls: discovery, token, JWKS, user info).
pub struct Provider {
    kind: Kind,
    timeout: Duration,
}

enum Kind {
    Oidc(Box<oidc::OidcProvider>),
    Github(github::GithubProvider),
}

/// Runs a step of a sign-in, or says the provider is unavailable when it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    step: impl Future<Output = Result<T, SsoError>>,
) -> Result<T, SsoError> {
    tokio::time::timeout(limit, step)
        .await
        .unwrap_or_else(|_| Err(SsoError::Unavailable(format!("no answer within {limit:?}"))))
}

impl Provider {
    pub fn rules(&self) -> &ProviderRules {
        match &self.kind {
            Kind::Oidc(p) => &p.config.rules,
            Kind::Github(p) => &p.config.rules,
        }
    }

    /// Members of this group are made administrators (OpenID Connect only).
    pub fn admin_group(&self) -> Option<&str> {
        match &self.kind {
            Kind::Oidc(p) => p.config.admin_group.as_deref(),
            Kind::Github(_) => None,
        }
    }

    /// The issuer its identities are stored under.
    pub fn issuer(&self) -> &str {
        match &self.kind {
            Kind::Oidc(p) => &p.config.issuer,
            Kind::Github(p) => &p.config.web_url,
        }
    }

    /// The provider's authorization URL for a new flow (OpenID Connect discovers its endpoints first).
    /// `reauthenticate`: ask the provider to have the person log in again even if they have a session there
    /// (linking to an account).
    pub async fn authorize(
        &self,
        redirect_uri: &str,
        secrets: &FlowSecrets,
        reauthenticate: bool,
    ) -> Result<Authorization, SsoError> {
        within(self.timeout, async {
            match &self.kind {
                Kind::Oidc(p) => p.authorize(redirect_uri, secrets, reauthenticate).await,
                Kind::Github(p) => p.authorize(redirect_uri, secrets),
            }
        })
        .await
    }

    /// Exchanges the callback's code (with the flow's PKCE verifier) and checks what comes back.
    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, SsoError> {
        within(self.timeout, async {
            match &self.kind {
                Kind::Oidc(p) => p.finish(redirect_uri, code, pkce_verifier, nonce).await,
                Kind::Github(p) => p.finish(redirect_uri, code, pkce_verifier).await,
            }
        })
        .await
    }
}

/// The configured providers, in the order their buttons show.
#[derive(Clone, Default)]
pub struct Providers {
    list: Arc<Vec<Provider>>,
}

impl Providers {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Providers> {
        let http = http_client(config.timeout)?;
        let mut list = Vec::new();
        for p in &config.oidc {
            list.push(Provider {
                kind: Kind::Oidc(Box::new(oidc::OidcProvider::new(p.clone(), http.clone()))),
                timeout: config.timeout,
            });
        }
        if let Some(g) = &config.github {
            list.push(Provider {
                kind: Kind::Github(github::GithubProvider::new(g.clone(), http.clone())),
                timeout: config.timeout,
            });
        }
        Ok(Providers {
            list: Arc::new(list),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.rules().name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.list.iter()
    }

    /// The configured provider whose identities have this issuer.
    pub fn by_issuer(&self, issuer: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.issuer() == issuer)
    }

    /// (URL name, button label) of each provider.
    pub fn buttons(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .map(|p| (p.rules().name.clone(), p.rules().display_name.clone()))
            .collect()
    }
}

/// The client for talking to providers: bounded in time, and never following redirects (a provider's
/// endpoints answer directly; a redirect could point the server at an address of the attacker's choosing).
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("llmeta/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The lower-cased address, when it is one.
fn normalise_email(email: Option<&str>) -> Option<String> {
    email
        .and_then(|e| crate::domain::Email::parse(e).ok())
        .map(|e| e.as_str().to_string())
}

/// An error with its causes, for the log (reqwest's own message hides whether it was a timeout).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636, appendix B.
        let s = FlowSecrets {
            state: String::new(),
            pkce_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            nonce: String::new(),
        };
        assert_eq!(
            s.pkce_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let fresh = FlowSecrets::new();
        assert_eq!(fresh.pkce_verifier.len(), 43);
        assert_ne!(fresh.state, FlowSecrets::new().state);
    }
}
