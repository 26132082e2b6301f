//! `/accounts/login`, `/accounts/signup`, `/accounts/logout`.

use super::{Chrome, render, safe_next};
use crate::accounts::{
    self, DeviceClaim, FieldErrors, LoginAttempt, LoginError, RegisterError, Registration,
    SignupLimit,
};
use crate::config::mail::Verification;
use crate::db::users::User;
use crate::web::AppState;
use crate::web::auth::{end_session, start_session};
use crate::web::cookies;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{ClientIp, MaybeUser, user_agent};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    next: String,
    error: Option<String>,
    notice: Option<String>,
    signup_open: bool,
    /// Sign-in providers: (label, start URL).
    providers: Vec<(String, String)>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// Set by the redirect after a successful password reset.
    reset: Option<String>,
}

/// The registration errors that are not the form's own: limits and server errors, as error pages.
pub fn register_refusal(e: RegisterError) -> Result<FieldErrors, AppError> {
    match e {
        RegisterError::Invalid(errors) => Ok(errors),
        RegisterError::Throttled {
            retry_after_secs, ..
        } => Err(AppError::TooManyRequests {
            message: e.message(),
            retry_after_secs,
        }),
        RegisterError::Busy { retry_after_secs } => Err(AppError::Busy {
            message: e.message(),
            retry_after_secs,
        }),
        RegisterError::Internal(e) => Err(AppError::Internal(e)),
    }
}

/// A `Set-Cookie` for this browser's device cookie for `user`, signed for their current password hash, and
/// keeping the device id the browser already had if its cookie was still valid for them.
pub fn device_cookie(state: &AppState, headers: &HeaderMap, user: &User) -> HeaderValue {
    let epoch = user.password_hash.as_deref();
    let device_id = cookies::device(headers)
        .filter(|d| d.user_id == user.id && d.verify(state.device_key(), epoch))
        .map(|d| d.device_id)
        .unwrap_or_else(|| crate::util::random_token(16));
    cookies::set(
        cookies::DEVICE,
        &cookies::device_value(state.device_key(), &user.id, &device_id, epoch),
        cookies::DEVICE_MAX_AGE_SECS,
        state.config().secure_cookies(),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    csrf: CsrfToken,
    Query(q): Query<NextQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(q.next.as_deref());
    if user.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let providers = super::sso::buttons(&state, &next);
    render(
        StatusCode::OK,
        &LoginPage {
            chrome: Chrome::new(None, &csrf),
            email: String::new(),
            providers,
            error: None,
            notice: if q.reset.is_some() {
                Some("Your password was changed. Log in with your new password.".into())
            } else if next == "/auth/link" {
                Some(
                    "Log in to the account with this address to link your new sign-in to it."
                        .into(),
                )
            } else {
                None
            },
            signup_open: state.config().allow_signup,
            next,
        },
    )
}

pub async fn login(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    let next = safe_next(f.next.as_deref());
    let device = cookies::device(&headers);
    let key = state.device_key();
    let valid_for = |epoch: Option<&str>| device.as_ref().is_some_and(|d| d.verify(key, epoch));
    let attempt = LoginAttempt {
        email: &f.email,
        password: &f.password,
        ip: &ip,
        device: device.as_ref().map(|d| DeviceClaim {
            user_id: &d.user_id,
            device_id: &d.device_id,
            valid_for: &valid_for,
        }),
    };
    match accounts::login(state.db(), state.hashes(), attempt).await {
        Ok(signed_in) => {
            let user = signed_in.user;
            // Drop any session this browser already had before handing out a new one.
            let _ = end_session(&state, cookies::get(&headers, cookies::SESSION)).await;
            let cookie = start_session(&state, &user.id, &ip, &user_agent(&headers)).await?;
            tracing::info!(user_id = %user.id, known_device = signed_in.known_device, "signed in");
            let mut res = Redirect::to(&next).into_response();
            res.headers_mut().append(header::SET_COOKIE, cookie);
            res.headers_mut()
                .append(header::SET_COOKIE, device_cookie(&state, &headers, &user));
            Ok(res)
        }
        Err(LoginError::Internal(e)) => Err(AppError::Internal(e)),
        Err(err) => {
            let (status, retry) = match &err {
                LoginError::Throttled { retry_after_secs } => {
                    (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after_secs))
                }
                LoginError::Busy { retry_after_secs } => {
                    (StatusCode::SERVICE_UNAVAILABLE, Some(*retry_after_secs))
                }
                LoginError::Disabled => (StatusCode::FORBIDDEN, None),
                _ => (StatusCode::UNAUTHORIZED, None),
            };
            tracing::info!(outcome = ?err, "sign-in refused");
            let mut res = render(
                status,
                &LoginPage {
                    chrome: Chrome::new(None, &csrf),
                    email: f.email,
                    providers: super::sso::buttons(&state, &next),
                    next,
                    error: Some(err.message()),
                    notice: None,
                    signup_open: state.config().allow_signup,
                },
            )?;
            if let Some(secs) = retry {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Ok(res)
        }
    }
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    chrome: Chrome,
    email: String,
    name: String,
    errors: FieldErrors,
    providers: Vec<(String, String)>,
}

/// The sign-up and first-run set-up forms.
#[derive(Deserialize)]
pub struct RegistrationForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// Creates the account and signs it in (a redirect to `/`), or returns the form's errors.
pub async fn register_and_sign_in(
    state: &AppState,
    ip: &str,
    headers: &HeaderMap,
    f: &RegistrationForm,
    first_admin: bool,
) -> Result<Result<Response, FieldErrors>, AppError> {
    let reg = Registration {
        email: &f.email,
        name: &f.name,
        password: &f.password,
        confirm: &f.confirm,
    };
    // Sign-ups are limited per client IP; the first administrator's set-up is not (it happens once).
    let limit = (!first_admin).then_some(SignupLimit {
        ip,
        per_hour: state.config().signups_per_ip_hour,
    });
    match accounts::register(state.db(), state.hashes(), reg, first_admin, limit).await {
        Ok(user) => {
            if !first_admin && state.config().mail.verification != Verification::Off {
                let sent = accounts::verification::send_link(
                    state.db(),
                    state.mailer(),
                    &user,
                    &state.public_url(),
                )
                .await;
                if let Err(e) = sent {
                    tracing::error!(user_id = %user.id, error = %e, "could not send a verification mail");
                }
            }
            // Drop any session this browser already had before handing out a new one.
            let _ = end_session(state, cookies::get(headers, cookies::SESSION)).await;
            let cookie = start_session(state, &user.id, ip, &user_agent(headers)).await?;
            // Signing up signs in: the admin list must not say "never" for it.
            crate::db::users::record_login(state.db(), &user.id, crate::util::now_ms()).await?;
            tracing::info!(user_id = %user.id, admin = first_admin, "account created");
            let mut res = Redirect::to("/").into_response();
            res.headers_mut().append(header::SET_COOKIE, cookie);
            res.headers_mut()
                .append(header::SET_COOKIE, device_cookie(state, headers, &user));
            Ok(Ok(res))
        }
        Err(e) => register_refusal(e).map(Err),
    }
}

fn signup_closed() -> AppError {
    AppError::BadRequest(
        "Sign-up is closed on this server. Ask an administrator for an account.".into(),
    )
}

pub async fn signup_form(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    csrf: CsrfToken,
) -> Result<Response, AppError> {
    if user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    if !state.config().allow_signup {
        return Err(signup_closed());
    }
    render(
        StatusCode::OK,
        &SignupPage {
            chrome: Chrome::new(None, &csrf),
            email: String::new(),
            name: String::new(),
            errors: FieldErrors::default(),
            providers: super::sso::buttons(&state, "/"),
        },
    )
}

pub async fn signup(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<RegistrationForm>,
) -> Result<Response, AppError> {
    if !state.config().allow_signup {
        return Err(signup_closed());
    }
    match register_and_sign_in(&state, &ip, &headers, &f, false).await? {
        Ok(signed_in) => Ok(signed_in),
        Err(errors) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignupPage {
                chrome: Chrome::new(None, &csrf),
                email: f.email,
                name: f.name,
                errors,
                providers: super::sso::buttons(&state, "/"),
            },
        ),
    }
}

#[derive(Deserialize, Default)]
struct LogoutForm {
    next: Option<String>,
}

/// Ends the session and goes to `/`, or to the form's `next` (a local path: the page of a pending link sends
/// the person to log in to the account it waits for).
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let form: LogoutForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let cookie = end_session(&state, cookies::get(&headers, cookies::SESSION)).await?;
    let to = safe_next(form.next.as_deref());
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response())
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    chrome: Chrome,
    token: String,
    errors: FieldErrors,
    /// False when the link no longer works: the page then says why and shows no form.
    usable: bool,
}

pub async fn reset_form(
    State(state): State<AppState>,
    csrf: CsrfToken,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let link = crate::db::resets::state(
        state.db(),
        &crate::util::sha256_hex(&token),
        crate::util::now_ms(),
    )
    .await?;
    let valid = matches!(link, crate::db::resets::LinkState::Live(_));
    let mut errors = FieldErrors::default();
    if !valid {
        errors.form = Some(link.message().into());
    }
    render(
        if valid {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
        &ResetPage {
            chrome: Chrome::new(None, &csrf),
            token,
            errors,
            usable: valid,
        },
    )
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn reset(
    State(state): State<AppState>,
    csrf: CsrfToken,
    axum::extract::Path(token): axum::extract::Path<String>,
    Form(f): Form<ResetForm>,
) -> Result<Response, AppError> {
    match accounts::reset_password(state.db(), state.hashes(), &token, &f.password, &f.confirm)
        .await
    {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "password reset");
            Ok(Redirect::to("/accounts/login?reset=1").into_response())
        }
        Err(e) => {
            let errors = register_refusal(e)?;
            // A form error (password rules) keeps the form; a dead link only says why.
            let usable = errors.password.is_some() || errors.confirm.is_some();
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ResetPage {
                    chrome: Chrome::new(None, &csrf),
                    token,
                    errors,
                    usable,
                },
            )
        }
    }
}

/// The path as request logs may show it: a reset link's token is a password-equivalent secret for an hour,
/// so `/accounts/reset/<token>` is logged as `/accounts/reset/[redacted]`.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    // Case-insensitive: a mistyped `/Accounts/Reset/<token>` (a 404) carries the token all the same.
    for secret in ["/accounts/reset/", "/accounts/verify/"] {
        if let Some(head) = path.get(..secret.len())
            && head.eq_ignore_ascii_case(secret)
            && path.len() > secret.len()
            && !path.eq_ignore_ascii_case("/accounts/verify/resend")
        {
            return format!("{secret}[redacted]").into();
        }
    }
    path.into()
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn reset_tokens_never_reach_the_log() {
        assert_eq!(
            loggable_path("/accounts/reset/abcDEF123"),
            "/accounts/reset/[redacted]"
        );
        assert_eq!(
            loggable_path("/accounts/reset/abc/extra"),
            "/accounts/reset/[redacted]"
        );
        assert_eq!(loggable_path("/accounts/login"), "/accounts/login");
        assert_eq!(
            loggable_path("/accounts/verify/abcDEF123"),
            "/accounts/verify/[redacted]"
        );
        assert_eq!(
            loggable_path("/accounts/verify/resend"),
            "/accounts/verify/resend"
        );
    }
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    chrome: Chrome,
    /// The form was sent: the page says a mail is on its way if the address has an account.
    sent: bool,
}

pub async fn forgot_form(csrf: CsrfToken) -> Result<Response, AppError> {
    render(
        StatusCode::OK,
        &ForgotPage {
            chrome: Chrome::new(None, &csrf),
            sent: false,
        },
    )
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// The same page, at once, whether or not the address has an account (and whether or not a mail went out);
/// too many requests from one address get 429.
pub async fn forgot(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ClientIp(ip): ClientIp,
    Form(form): Form<ForgotForm>,
) -> Result<Response, AppError> {
    let client = crate::db::throttle::client_key(&ip);
    if let Some(retry_after_secs) = accounts::reset_links::too_many_asks(state.db(), &client)
        .await
        .map_err(AppError::Internal)?
    {
        return Err(AppError::TooManyRequests {
            message: format!(
                "Too many password reset requests from your address. {}",
                crate::db::throttle::try_again_in(retry_after_secs)
            ),
            retry_after_secs,
        });
    }
    accounts::reset_links::ask_in_background(
        state.db().clone(),
        state.mailer().clone(),
        form.email,
        state.public_url(),
    );
    render(
        StatusCode::OK,
        &ForgotPage {
            chrome: Chrome::new(None, &csrf),
            sent: true,
        },
    )
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    chrome: Chrome,
    verified: bool,
    /// The link changed the account's address to this one.
    changed_to: Option<String>,
}

/// A verification link followed (signed in or not: the link alone shows the mailbox is theirs).
pub async fn verify(
    State(state): State<AppState>,
    user: MaybeUser,
    csrf: CsrfToken,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let followed = accounts::verification::verify(state.db(), state.mailer(), &token)
        .await
        .map_err(AppError::Internal)?;
    let verified = followed != accounts::verification::Followed::Nothing;
    render(
        if verified {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
        &VerifyPage {
            chrome: Chrome::new(user.0.as_ref(), &csrf),
            verified,
            changed_to: match followed {
                accounts::verification::Followed::Changed(address) => Some(address),
                _ => None,
            },
        },
    )
}

/// Sends the signed-in person a new verification link (not more than one a minute).
pub async fn resend_verification(
    State(state): State<AppState>,
    user: crate::web::extract::CurrentUser,
) -> Result<Response, AppError> {
    if state.config().mail.verification == Verification::Off
        || user.user.email_verified_ms.is_some()
    {
        return Ok(Redirect::to("/settings").into_response());
    }
    let sent = accounts::verification::send_link(
        state.db(),
        state.mailer(),
        &user.user,
        &state.public_url(),
    )
    .await
    .map_err(AppError::Internal)?;
    Ok(Redirect::to(if sent {
        "/settings?saved=verify"
    } else {
        "/settings?saved=verify-wait"
    })
    .into_response())
}
