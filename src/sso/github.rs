//! GitHub sign-in (OAuth 2, not OpenID Connect): the code flow with `state` and PKCE at the web address
//! (`/login/oauth/authorize`, `/login/oauth/access_token`), then the person and their **verified** emails from
//! the REST API (`/user`, `/user/emails`). The web and API addresses are configurable for GitHub Enterprise.

use super::{Authorization, FlowSecrets, Identity, SsoError, error_chain, normalise_email};
use crate::config::auth::GithubConfig;
use serde::Deserialize;

/// The scopes asked for: the public profile and the email addresses (to find a verified one).
const SCOPES: &str = "read:user user:email";
/// The largest API answer read (a person's emails fit in a few kilobytes).
const MAX_ANSWER_BYTES: usize = 1 << 20;

pub struct GithubProvider {
    pub config: GithubConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

impl GithubProvider {
    pub fn new(config: GithubConfig, http: reqwest::Client) -> GithubProvider {
        GithubProvider { config, http }
    }

    fn web(&self, path: &str) -> String {
        format!("{}{path}", self.config.web_url.trim_end_matches('/'))
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.trim_end_matches('/'))
    }

    pub fn authorize(
        &self,
        redirect_uri: &str,
        secrets: &FlowSecrets,
    ) -> Result<Authorization, SsoError> {
        let mut url = reqwest::Url::parse(&self.web("/login/oauth/authorize"))
            .map_err(|e| SsoError::Unavailable(format!("the GitHub address is not a URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", &secrets.state)
            .append_pair("code_challenge", &secrets.pkce_challenge())
            .append_pair("code_challenge_method", "S256");
        Ok(Authorization {
            url: url.to_string(),
        })
    }

    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<Identity, SsoError> {
        let answer = self
            .http
            .post(self.web("/login/oauth/access_token"))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.expose().as_str()),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", pkce_verifier),
            ])
            .send()
            .await
            .map_err(unavailable("the token request"))?;
        // GitHub answers a refused code with 200 and an `error` field.
        let token: TokenAnswer = read_json(answer, "the token answer").await?;
        let access_token = match (token.access_token, token.error) {
            (Some(t), None) if !t.is_empty() => t,
            (_, error) => {
                return Err(SsoError::Invalid(format!(
                    "GitHub refused the code: {}{}",
                    error.as_deref().unwrap_or("no access token"),
                    token
                        .error_description
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )));
            }
        };
        let user: GithubUser = self.get(&access_token, "/user").await?;
        let emails: Vec<GithubEmail> = self.get(&access_token, "/user/emails").await?;
        // The primary address if it is verified, else any verified one; an unverified address is not used.
        let verified = emails
            .iter()
            .filter(|e| e.verified)
            .max_by_key(|e| e.primary)
            .map(|e| e.email.as_str());
        Ok(Identity {
            issuer: self.config.web_url.clone(),
            subject: user.id.to_string(),
            email: normalise_email(verified),
            email_verified: verified.is_some(),
            name: user
                .name
                .filter(|n| !n.trim().is_empty())
                .or(Some(user.login)),
            groups: Vec::new(),
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        access_token: &str,
        path: &str,
    ) -> Result<T, SsoError> {
        let answer = self
            .http
            .get(self.api(path))
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(unavailable("the GitHub API"))?;
        let status = answer.status();
        if status.is_server_error() {
            return Err(SsoError::Unavailable(format!(
                "GitHub's {path} answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(SsoError::Invalid(format!(
                "GitHub's {path} answered {status}"
            )));
        }
        read_json(answer, path).await
    }
}

fn unavailable(what: &'static str) -> impl Fn(reqwest::Error) -> SsoError {
    move |e| SsoError::Unavailable(format!("{what} failed: {}", error_chain(&e)))
}

/// Reads a JSON answer of at most [`MAX_ANSWER_BYTES`].
async fn read_json<T: serde::de::DeserializeOwned>(
    mut answer: reqwest::Response,
    what: &str,
) -> Result<T, SsoError> {
    if answer.status().is_server_error() {
        return Err(SsoError::Unavailable(format!(
            "{what}: {}",
            answer.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| SsoError::Unavailable(format!("{what}: {}", error_chain(&e))))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(SsoError::Invalid(format!("{what} is too large")));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| SsoError::Invalid(format!("{what} could not be read: {e}")))
}
