//! Sign-in with other providers: `/auth/{name}/login` and `/auth/{name}/callback`, linking from Settings
//! (`POST /auth/{name}/link`), and confirming a pending link (`/auth/link`).
//!
//! The flow's `state` is both in a cookie of this browser and (hashed) in `sso_flows` with the PKCE verifier,
//! the nonce and where to go next: a callback must come to the browser that started it, and a state is taken
//! (deleted) by the first callback that shows it, so it works once.

use super::{Chrome, render, safe_next};
use crate::accounts::identities::{self, Outcome, Refusal, SignInError};
use crate::config::mail::Verification;
use crate::db::{sso_flows, throttle};
use crate::sso::{FlowSecrets, Provider, SsoError};
use crate::util::{now_ms, sha256_hex};
use crate::web::AppState;
use crate::web::auth::{end_session, start_session};
use crate::web::cookies;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{ClientIp, CurrentUser, MaybeUser, user_agent};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// The browser's half of a flow: its `state`.
const FLOW_COOKIE: &str = "llmeta_sso";
/// The browser's token of a pending link.
const LINK_COOKIE: &str = "llmeta_link";
/// How long a person has at the provider.
const FLOW_TTL_MS: i64 = 10 * 60 * 1000;
/// Sign-ins started per client address in [`FLOW_WINDOW_MS`]: each stores a flow.
const FLOWS_PER_WINDOW: i64 = 60;
const FLOW_WINDOW_MS: i64 = 15 * 60 * 1000;

#[derive(Template)]
#[template(path = "sso_error.html")]
struct SsoErrorPage {
    chrome: Chrome,
    title: String,
    message: String,
    /// Where to go on: back to log in (with `next`), or to Settings when signed in.
    back: String,
    back_label: &'static str,
}

impl SsoErrorPage {
    fn new(
        csrf: &CsrfToken,
        user: Option<&CurrentUser>,
        title: String,
        message: String,
        next: &str,
    ) -> Self {
        let (back, back_label) = match user {
            Some(_) => ("/settings".to_string(), "Back to Settings"),
            None => (login_path(next), "Back to log in"),
        };
        SsoErrorPage {
            chrome: Chrome::new(user, csrf),
            title,
            message,
            back,
            back_label,
        }
    }
}

/// A friendly page for a sign-in that did not work, with the reason in the log (never the page). `user`: the
/// signed-in person of a link flow, who is told to try again from Settings rather than to log in.
fn failure(
    state: &AppState,
    csrf: &CsrfToken,
    user: Option<&CurrentUser>,
    provider: &str,
    error: &SsoError,
    next: &str,
) -> Result<Response, AppError> {
    let label = label_of(state, provider);
    let instead = if user.is_some() {
        "You can try again from Settings."
    } else {
        "You can try again, or log in with a password."
    };
    let (status, title, message) = match error {
        SsoError::Invalid(why) => {
            tracing::warn!(provider, reason = %why, "sign-in with a provider refused");
            (
                StatusCode::BAD_REQUEST,
                format!("Sign-in with {label} did not work"),
                "The answer from the sign-in provider could not be accepted: the sign-in may have expired, been \
                 used already, or been started in another browser. Nothing was changed. Try again."
                    .to_string(),
            )
        }
        SsoError::Denied => (
            StatusCode::FORBIDDEN,
            format!("Sign-in with {label} was cancelled"),
            format!("{label} did not let you in, or you declined. Nothing was changed. {instead}"),
        ),
        SsoError::Unavailable(why) => {
            tracing::warn!(provider, reason = %why, "sign-in provider unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{label} is unavailable"),
                format!(
                    "{label} did not answer in time or is having problems. {}",
                    if user.is_some() {
                        "Try again in a few minutes, from Settings."
                    } else {
                        "Try again in a few minutes, or log in with a password."
                    }
                ),
            )
        }
    };
    render(status, &SsoErrorPage::new(csrf, user, title, message, next))
}

fn refusal(
    csrf: &CsrfToken,
    user: Option<&CurrentUser>,
    refusal: &Refusal,
    next: &str,
) -> Result<Response, AppError> {
    tracing::info!(reason = %refusal, "sign-in with a provider refused by the account rules");
    render(
        StatusCode::FORBIDDEN,
        &SsoErrorPage::new(
            csrf,
            user,
            "This sign-in cannot be used here".into(),
            refusal.to_string(),
            next,
        ),
    )
}

/// `path` with `?next=` when `next` is not the start page.
fn with_next(path: &str, next: &str) -> String {
    if next == "/" {
        path.to_string()
    } else {
        format!(
            "{path}?next={}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        )
    }
}

fn login_path(next: &str) -> String {
    with_next("/accounts/login", next)
}

fn provider<'a>(state: &'a AppState, name: &str) -> Result<&'a Provider, AppError> {
    state.providers().get(name).ok_or(AppError::NotFound)
}

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "sso_continue.html")]
struct ContinuePage {
    chrome: Chrome,
    provider: String,
    url: String,
}

/// Starts a flow: stores it, gives the browser its state, and sends it to the provider. A flow started by a
/// form (linking from Settings) goes on from a page of its own rather than a redirect: browsers hold a form's
/// redirects to the page's `form-action 'self'`.
async fn start(
    state: &AppState,
    csrf: &CsrfToken,
    user: Option<&CurrentUser>,
    name: &str,
    ip: &str,
    next: String,
) -> Result<Response, AppError> {
    let link_user_id = user.map(|u| u.user.id.clone());
    let provider = provider(state, name)?;
    let now = now_ms();
    let key = format!("sso:{}", throttle::client_key(ip));
    let (count, window_start) = throttle::hit(state.db(), &key, now, FLOW_WINDOW_MS).await?;
    if count > FLOWS_PER_WINDOW {
        let retry_after_secs = throttle::retry_after_secs(window_start, FLOW_WINDOW_MS, now);
        return Err(AppError::TooManyRequests {
            message: format!(
                "Too many sign-ins were started from your address. {}",
                throttle::try_again_in(retry_after_secs)
            ),
            retry_after_secs,
        });
    }
    let secrets = FlowSecrets::new();
    // Linking asks the provider to log the person in again, whatever session they have there.
    let authorization = match provider
        .authorize(&state.callback_url(name), &secrets, user.is_some())
        .await
    {
        Ok(a) => a,
        Err(e) => return failure(state, csrf, user, name, &e, &next),
    };
    sso_flows::start(
        state.db(),
        &sha256_hex(&secrets.state),
        &sso_flows::Flow {
            provider: name.to_string(),
            pkce_verifier: secrets.pkce_verifier.clone(),
            nonce: secrets.nonce.clone(),
            next,
            link_user_id,
        },
        now,
        now + FLOW_TTL_MS,
    )
    .await?;
    let mut res = match user {
        None => Redirect::to(&authorization.url).into_response(),
        Some(user) => render(
            StatusCode::OK,
            &ContinuePage {
                chrome: Chrome::new(Some(user), csrf),
                provider: provider.rules().display_name.clone(),
                url: authorization.url,
            },
        )?,
    };
    res.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(
            FLOW_COOKIE,
            &secrets.state,
            FLOW_TTL_MS / 1000,
            state.config().secure_cookies(),
        ),
    );
    Ok(res)
}

/// Before the first-run set-up has made the administrator, a provider's sign-in would make the first account
/// an ordinary user's and end the set-up with no administrator: it goes to the set-up page instead.
async fn setup_first(state: &AppState) -> Result<Option<Response>, AppError> {
    Ok((crate::db::users::count(state.db()).await? == 0)
        .then(|| Redirect::to("/setup").into_response()))
}

/// `GET /auth/{name}/login?next=`: sign in (or up) with a provider.
pub async fn login(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
) -> Result<Response, AppError> {
    provider(&state, &name)?;
    if let Some(setup) = setup_first(&state).await? {
        return Ok(setup);
    }
    start(
        &state,
        &csrf,
        None,
        &name,
        &ip,
        safe_next(q.next.as_deref()),
    )
    .await
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    current: String,
}

/// `POST /auth/{name}/link` (Settings): link an identity at a provider to the signed-in account. A POST with
/// the form's CSRF token, so another site cannot start a link of its own identity to a visitor's account; and
/// the person shows it is them again (the current password, or for an account without one a sign-in of the
/// last minutes), so a session left open cannot add a lasting way in.
pub async fn link(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    axum::Form(f): axum::Form<LinkForm>,
) -> Result<Response, AppError> {
    provider(&state, &name)?;
    let problem = if user.user.password_hash.is_some() {
        let checked = crate::accounts::check_current_password(
            state.db(),
            state.hashes(),
            &user.user,
            &f.current,
        )
        .await;
        match checked {
            Ok(true) => None,
            Ok(false) => Some("Your current password is incorrect.".to_string()),
            Err(e) => {
                // Limits and server errors are pages of their own.
                super::accounts::register_refusal(e)?;
                Some("Your current password could not be checked.".to_string())
            }
        }
    } else if super::settings::needs_fresh_sign_in(&state, &user).await? {
        Some(super::settings::FRESH_SIGN_IN.to_string())
    } else {
        None
    };
    if let Some(message) = problem {
        let mut p = super::settings::page(&state, &user, &csrf).await?;
        p.identity_error = Some(message);
        return render(StatusCode::UNPROCESSABLE_ENTITY, &p);
    }
    start(&state, &csrf, Some(&user), &name, &ip, "/settings".into()).await
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: the issuer of the answer, when the provider says.
    iss: Option<String>,
}

/// `GET /auth/{name}/callback`: where the provider sends the browser back.
pub async fn callback(
    State(state): State<AppState>,
    MaybeUser(current): MaybeUser,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let provider = provider(&state, &name)?;
    if let Some(setup) = setup_first(&state).await? {
        return Ok(setup);
    }
    let secure = state.config().secure_cookies();
    // The flow's cookie goes whatever happens: a state is used once.
    let with_cleared_flow = |mut res: Response| {
        res.headers_mut()
            .append(header::SET_COOKIE, cookies::clear(FLOW_COOKIE, secure));
        res
    };
    let flow = match take_flow(&state, &headers, &name, q.state.as_deref()).await? {
        Ok(flow) => flow,
        Err(e) => {
            return failure(&state, &csrf, current.as_ref(), &name, &e, "/").map(with_cleared_flow);
        }
    };
    let next = safe_next(Some(&flow.next));
    let checked = async {
        if let Some(error) = &q.error {
            return Err(if error == "access_denied" {
                SsoError::Denied
            } else {
                SsoError::Invalid(format!(
                    "the provider answered {error}: {}",
                    q.error_description.as_deref().unwrap_or("")
                ))
            });
        }
        if let Some(iss) = &q.iss
            && iss != provider.issuer()
        {
            return Err(SsoError::Invalid(format!(
                "the answer names another issuer: {iss}"
            )));
        }
        let code = q
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| SsoError::Invalid("the answer has no code".into()))?;
        provider
            .finish(
                &state.callback_url(&name),
                code,
                &flow.pkce_verifier,
                &flow.nonce,
            )
            .await
    }
    .await;
    let identity = match checked {
        Ok(identity) => identity,
        Err(e) => {
            let linking = current.as_ref().filter(|_| flow.link_user_id.is_some());
            return failure(&state, &csrf, linking, &name, &e, &next).map(with_cleared_flow);
        }
    };
    // A link started from Settings finishes only for the account that started it.
    let link_to = match &flow.link_user_id {
        Some(id) => match &current {
            Some(me) if &me.user.id == id => Some(&me.user),
            _ => {
                let e = SsoError::Invalid(
                    "a link was finished by another account or after logging out".into(),
                );
                return failure(&state, &csrf, current.as_ref(), &name, &e, "/settings")
                    .map(with_cleared_flow);
            }
        },
        None => None,
    };
    let outcome = identities::sign_in(
        state.db(),
        state.mailer(),
        provider,
        &identity,
        link_to,
        state.config().allow_signup,
    )
    .await;
    let res = match outcome {
        Ok(Outcome::SignedIn { user, created }) => {
            if created
                && user.email_verified_ms.is_none()
                && state.config().mail.verification != Verification::Off
                && let Err(e) = crate::accounts::verification::send_link(
                    state.db(),
                    state.mailer(),
                    &user,
                    &state.public_url(),
                )
                .await
            {
                tracing::error!(user_id = %user.id, error = %e, "could not send a verification mail");
            }
            // Drop any session this browser already had before handing out a new one.
            let _ = end_session(&state, cookies::get(&headers, cookies::SESSION)).await;
            let cookie = start_session(&state, &user.id, &ip, &user_agent(&headers)).await?;
            tracing::info!(user_id = %user.id, provider = %name, created, "signed in with a provider");
            let mut res = Redirect::to(&next).into_response();
            res.headers_mut().append(header::SET_COOKIE, cookie);
            res
        }
        Ok(Outcome::Linked) => Redirect::to("/settings?saved=linked").into_response(),
        Ok(Outcome::ConfirmLink { token }) => {
            let mut res = Redirect::to("/auth/link").into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(
                    LINK_COOKIE,
                    &token,
                    identities::PENDING_LINK_TTL_MS / 1000,
                    secure,
                ),
            );
            res
        }
        Err(SignInError::Refused(r)) => refusal(&csrf, current.as_ref(), &r, &next)?,
        Err(SignInError::Internal(e)) => return Err(AppError::Internal(e)),
    };
    Ok(with_cleared_flow(res))
}

/// The flow this callback finishes: its state must be the one this browser holds, and live.
async fn take_flow(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    query_state: Option<&str>,
) -> Result<Result<sso_flows::Flow, SsoError>, AppError> {
    use subtle::ConstantTimeEq as _;
    let Some(query_state) = query_state.filter(|s| !s.is_empty()) else {
        return Ok(Err(SsoError::Invalid("the answer has no state".into())));
    };
    let held = cookies::get(headers, FLOW_COOKIE).unwrap_or("");
    if held.is_empty() || !bool::from(held.as_bytes().ct_eq(query_state.as_bytes())) {
        return Ok(Err(SsoError::Invalid(
            "the state is not the one this browser started".into(),
        )));
    }
    let Some(flow) = sso_flows::take(state.db(), &sha256_hex(query_state), now_ms()).await? else {
        return Ok(Err(SsoError::Invalid(
            "the state expired or was used".into(),
        )));
    };
    if flow.provider != name {
        return Ok(Err(SsoError::Invalid(format!(
            "the state belongs to a sign-in with {}",
            flow.provider
        ))));
    }
    Ok(Ok(flow))
}

#[derive(Template)]
#[template(path = "link.html")]
struct LinkPage {
    chrome: Chrome,
    provider: String,
    email: String,
    /// Signed in to the account the link waits for: the page asks to confirm.
    confirm: bool,
    /// The signed-in account, when it is another one.
    other_account: Option<String>,
}

/// `GET /auth/link`: a provider's verified email matched an existing account; its owner signs in and confirms.
pub async fn pending(
    State(state): State<AppState>,
    MaybeUser(current): MaybeUser,
    csrf: CsrfToken,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let token = cookies::get(&headers, LINK_COOKIE).unwrap_or("");
    let Some(link) = identities::pending(state.db(), token).await? else {
        return render(
            StatusCode::NOT_FOUND,
            &SsoErrorPage::new(
                &csrf,
                current.as_ref(),
                "No sign-in is waiting to be linked".into(),
                "The link expired (it lasts 15 minutes) or was used. Log in with the provider again.".into(),
                "/",
            ),
        );
    };
    let label = label_of(&state, &link.provider);
    let (status, confirm, other_account) = match &current {
        Some(me) if me.user.id == link.user_id => (StatusCode::OK, true, None),
        Some(me) => (StatusCode::FORBIDDEN, false, Some(me.user.email.clone())),
        None => (StatusCode::OK, false, None),
    };
    render(
        status,
        &LinkPage {
            chrome: Chrome::new(current.as_ref(), &csrf),
            provider: label,
            email: link.email,
            confirm,
            other_account,
        },
    )
}

/// `POST /auth/link`: links the pending identity to the signed-in account it waits for.
pub async fn confirm(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let token = cookies::get(&headers, LINK_COOKIE).unwrap_or("");
    let label = match identities::pending(state.db(), token).await? {
        Some(link) => label_of(&state, &link.provider),
        None => "the provider".into(),
    };
    let secure = state.config().secure_cookies();
    match identities::confirm_link(state.db(), state.mailer(), &user.user, token, &label).await {
        Ok(()) => {
            let mut res = Redirect::to("/settings?saved=linked").into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, cookies::clear(LINK_COOKIE, secure));
            Ok(res)
        }
        Err(SignInError::Refused(r)) => refusal(&csrf, Some(&user), &r, "/settings"),
        Err(SignInError::Internal(e)) => Err(AppError::Internal(e)),
    }
}

fn label_of(state: &AppState, provider: &str) -> String {
    state
        .providers()
        .get(provider)
        .map(|p| p.rules().display_name.clone())
        .unwrap_or_else(|| provider.to_string())
}

/// `POST /settings/identities/{id}/unlink`.
pub async fn unlink(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let providers = state.providers().clone();
    match identities::unlink(state.db(), &user.user.id, &id, |issuer| {
        providers.by_issuer(issuer).is_some()
    })
    .await
    {
        Ok(()) => Ok(Redirect::to("/settings?saved=unlinked").into_response()),
        Err(identities::UnlinkError::NotFound) => Err(AppError::NotFound),
        Err(identities::UnlinkError::LastWay) => {
            let mut p = super::settings::page(&state, &user, &csrf).await?;
            p.identity_error = Some(identities::UnlinkError::LastWay.to_string());
            render(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
        Err(identities::UnlinkError::Internal(e)) => Err(e.into()),
    }
}

/// The buttons of the login and sign-up pages: (label, start URL with `next`).
pub fn buttons(state: &AppState, next: &str) -> Vec<(String, String)> {
    state
        .providers()
        .buttons()
        .into_iter()
        .map(|(name, label)| (label, with_next(&format!("/auth/{name}/login"), next)))
        .collect()
}
