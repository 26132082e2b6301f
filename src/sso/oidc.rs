//! OpenID Connect: discovery from the issuer, the code flow with PKCE, `state` and `nonce`, and the ID token's
//! checks (signature by a key of the provider's JWKS, `iss`, `aud`, `exp`, `nonce`), with the `openidconnect`
//! crate. Only asymmetric signatures are accepted: `alg=none` and HMAC (whose "key" an attacker could take
//! from the published public key) are refused. A token signed by a key the cached JWKS lacks makes one fresh
//! fetch of the JWKS, so a provider's key rotation does not break sign-in.

use super::{Authorization, FlowSecrets, Identity, SsoError, error_chain, normalise_email};
use crate::config::auth::OidcConfig;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreIdTokenClaims,
    CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
    UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Discovery is cached this long; a failed sign-in does not wait for it to run out (see `finish`).
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The signatures an ID token may have.
const ASYMMETRIC: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

pub struct OidcProvider {
    pub config: OidcConfig,
    http: reqwest::Client,
    /// The provider's metadata (with its JWKS) and when it was fetched.
    metadata: Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

/// The `groups` claim of the user info answer: a list of names, or one name as a string.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GroupClaims {
    #[serde(default, deserialize_with = "one_or_many")]
    groups: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Groups {
        One(String),
        Many(Vec<String>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Groups::deserialize(d)? {
        Groups::One(g) => vec![g],
        Groups::Many(g) => g,
        Groups::Other(_) => Vec::new(),
    })
}
impl AdditionalClaims for GroupClaims {}

impl OidcProvider {
    pub fn new(config: OidcConfig, http: reqwest::Client) -> OidcProvider {
        OidcProvider {
            config,
            http,
            metadata: Mutex::new(None),
        }
    }

    /// The provider's metadata: cached, or discovered now. The lock is not held while discovering: a slow
    /// provider must not queue every sign-in behind one request (each is bounded by the step's timeout).
    async fn metadata(&self) -> Result<CoreProviderMetadata, SsoError> {
        if let Some((m, at)) = self.metadata.lock().await.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| SsoError::Unavailable(format!("the issuer is not a URL: {e}")))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                SsoError::Unavailable(format!(
                    "discovery at {} failed: {}",
                    self.config.issuer,
                    error_chain(&e)
                ))
            })?;
        check_endpoints(&m)?;
        *self.metadata.lock().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// Fetches the JWKS again (after a token signed by an unknown key) and keeps it with the metadata.
    async fn refresh_keys(
        &self,
        mut m: CoreProviderMetadata,
    ) -> Result<CoreProviderMetadata, SsoError> {
        let keys = CoreJsonWebKeySet::fetch_async(m.jwks_uri(), &self.http)
            .await
            .map_err(|e| {
                SsoError::Unavailable(format!("fetching the JWKS failed: {}", error_chain(&e)))
            })?;
        m = m.set_jwks(keys);
        *self.metadata.lock().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(
        &self,
        m: CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        SsoError,
    > {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| SsoError::Unavailable(format!("the redirect URI is not a URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().clone())),
        )
        .set_redirect_uri(redirect))
    }

    pub async fn authorize(
        &self,
        redirect_uri: &str,
        secrets: &FlowSecrets,
        reauthenticate: bool,
    ) -> Result<Authorization, SsoError> {
        let client = self.client(self.metadata().await?, redirect_uri)?;
        let state = secrets.state.clone();
        let nonce = secrets.nonce.clone();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(
                &PkceCodeVerifier::new(secrets.pkce_verifier.clone()),
            ));
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if reauthenticate {
            request = request.add_prompt(CoreAuthPrompt::Login);
        }
        let (url, _, _) = request.url();
        Ok(Authorization {
            url: url.to_string(),
        })
    }

    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, SsoError> {
        let metadata = self.metadata().await?;
        let client = self.client(metadata.clone(), redirect_uri)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::Unavailable(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => SsoError::Invalid(format!(
                    "the provider refused the code: {}{}",
                    r.error(),
                    r.error_description()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )),
                RequestTokenError::Request(e) => {
                    SsoError::Unavailable(format!("the token request failed: {}", error_chain(&e)))
                }
                other => SsoError::Invalid(format!(
                    "the token answer could not be read: {}",
                    error_chain(&other)
                )),
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| SsoError::Invalid("the token answer has no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let verifier = |m: &CoreProviderMetadata| {
            CoreIdTokenVerifier::new_public_client(
                ClientId::new(self.config.client_id.clone()),
                m.issuer().clone(),
                m.jwks().clone(),
            )
            .set_allowed_algs(ASYMMETRIC)
        };
        let claims: CoreIdTokenClaims = match id_token.claims(&verifier(&metadata), &nonce) {
            Ok(c) => c.clone(),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Signed by a key we do not know yet: the provider may have rotated its keys.
                let fresh = self.refresh_keys(metadata.clone()).await?;
                id_token
                    .claims(&verifier(&fresh), &nonce)
                    .map_err(|e| SsoError::Invalid(format!("the ID token failed its checks: {e}")))?
                    .clone()
            }
            Err(e) => {
                return Err(SsoError::Invalid(format!(
                    "the ID token failed its checks: {e}"
                )));
            }
        };
        let subject = claims.subject().clone();
        let mut email = claims.email().map(|e| e.to_string());
        // None: the provider sent no `email_verified` claim at all (only then may `trust_email` stand in).
        let mut email_verified = claims.email_verified();
        let mut name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string());
        let mut groups = groups_of(&id_token.to_string());
        // Many providers (oidc-provider among them) put profile claims only in the user info answer.
        let want_groups = self.config.admin_group.is_some() && groups.is_empty();
        if (email.is_none() || want_groups)
            && let Ok(request) =
                client.user_info(token.access_token().clone(), Some(subject.clone()))
        {
            let info: UserInfoClaims<GroupClaims, CoreGenderClaim> = request
                .request_async(&self.http)
                .await
                .map_err(|e| match e {
                    openidconnect::UserInfoError::Request(e) => SsoError::Unavailable(format!(
                        "the user info request failed: {}",
                        error_chain(&e)
                    )),
                    other => SsoError::Invalid(format!(
                        "the user info answer failed its checks: {}",
                        error_chain(&other)
                    )),
                })?;
            if email.is_none() {
                email = info.email().map(|e| e.to_string());
                email_verified = info.email_verified();
            }
            if name.is_none() {
                name = info.name().and_then(|n| n.get(None)).map(|n| n.to_string());
            }
            if groups.is_empty() {
                groups = info.additional_claims().groups.clone();
            }
        }
        let email = normalise_email(email.as_deref());
        Ok(Identity {
            issuer: self.config.issuer.clone(),
            subject: subject.to_string(),
            email_verified: email.is_some() && email_verified.unwrap_or(self.config.trust_email),
            email,
            name,
            groups,
        })
    }
}

/// The provider's endpoints must be https, like its issuer (plain http only on this machine): codes, tokens and
/// the client secret travel to them.
fn check_endpoints(m: &CoreProviderMetadata) -> Result<(), SsoError> {
    let mut urls = vec![m.authorization_endpoint().url(), m.jwks_uri().url()];
    urls.extend(m.token_endpoint().map(|u| u.url()));
    urls.extend(m.userinfo_endpoint().map(|u| u.url()));
    for url in urls {
        let local = url.host_str().is_some_and(crate::config::is_loopback_host);
        if url.scheme() != "https" && !(url.scheme() == "http" && local) {
            return Err(SsoError::Unavailable(format!(
                "the provider's endpoint {url} is not https"
            )));
        }
    }
    Ok(())
}

/// The `groups` claim of an ID token whose signature and claims were already checked.
fn groups_of(jwt: &str) -> Vec<String> {
    use base64::Engine as _;
    let Some(payload) = jwt.split('.').nth(1) else {
        return Vec::new();
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<GroupClaims>(&bytes).ok())
        .map(|g| g.groups)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_may_be_a_list_or_one_name() {
        let read = |json: &str| serde_json::from_str::<GroupClaims>(json).unwrap().groups;
        assert_eq!(read(r#"{"groups": ["a", "b"]}"#), ["a", "b"]);
        assert_eq!(read(r#"{"groups": "admins"}"#), ["admins"]);
        assert!(read(r#"{"groups": 7}"#).is_empty());
        assert!(read("{}").is_empty());
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"sub":"x","groups":"ops"}"#);
        assert_eq!(groups_of(&format!("h.{payload}.s")), ["ops"]);
    }
}
