//! `/settings`: profile, password and API keys (their actions are in `pages::api_keys`).

use super::api_keys::{KeyView, NewKeyView};
use super::{Chrome, render};
use crate::accounts::api_keys::{KeyFieldErrors, MAX_LIVE_KEYS};
use crate::accounts::{self, FieldErrors};
use crate::db::users;
use crate::domain::DisplayName;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::CurrentUser;
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    chrome: Chrome,
    email: String,
    name: String,
    role: &'static str,
    pub notice: Option<String>,
    /// The address still waits for its verification link (and verification is on).
    unverified: bool,
    /// A change of address waiting for its link to be followed.
    pending_email: Option<String>,
    pub email_errors: FieldErrors,
    pub new_email: String,
    name_error: Option<String>,
    /// False for an account made by a sign-in with a provider that never set one.
    has_password: bool,
    password_errors: FieldErrors,
    identities: Vec<IdentityView>,
    /// Configured providers not linked yet: (URL name, label).
    linkable: Vec<(String, String)>,
    pub identity_error: Option<String>,
    keys: Vec<KeyView>,
    max_keys: i64,
    /// Only on the page answering the creation form.
    pub new_key: Option<NewKeyView>,
    pub key_errors: KeyFieldErrors,
    pub key_name: String,
    pub key_expiry: String,
    /// Which key sends a chat message (`users::SEND_KEYS`).
    send_with: String,
    presets: Vec<crate::db::presets::Preset>,
    /// The person's budgets and their keys', with what is used and left.
    budgets: Vec<crate::calls::budgets::BudgetView>,
    /// The person's time zone (empty: UTC) and the names offered.
    time_zone: String,
    zones: Vec<String>,
}

/// A linked identity as Settings shows it.
pub struct IdentityView {
    id: String,
    provider: String,
    email: String,
    linked: String,
    /// Unlinking it would leave a way in (a password or another usable identity).
    can_unlink: bool,
}

/// How recent a sign-in must be for an account without a password to link a provider, set a password or
/// change its address: without a password to ask for, a recent sign-in is what shows it is its owner.
const FRESH_SIGN_IN_MS: i64 = 10 * 60 * 1000;

/// What such a person is told when their sign-in is older.
pub const FRESH_SIGN_IN: &str = "For your safety, log out and log in again first: this needs a sign-in of the \
    last 10 minutes, as your account has no password to ask for.";

/// True when `user` has no password and signed in to this session more than [`FRESH_SIGN_IN_MS`] ago.
pub async fn needs_fresh_sign_in(state: &AppState, user: &CurrentUser) -> Result<bool, AppError> {
    if user.user.password_hash.is_some() {
        return Ok(false);
    }
    let started = crate::db::sessions::started_ms(state.db(), &user.session_id).await?;
    Ok(started.is_none_or(|t| crate::util::now_ms() - t > FRESH_SIGN_IN_MS))
}

#[derive(Deserialize)]
pub struct Notice {
    saved: Option<String>,
}

/// The page with nothing typed yet.
pub async fn page(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
) -> Result<SettingsPage, AppError> {
    let providers = state.providers();
    let linked = crate::db::identities::for_user(state.db(), &user.user.id).await?;
    let linkable = providers
        .iter()
        .filter(|p| !linked.iter().any(|i| i.issuer == p.issuer()))
        .map(|p| (p.rules().name.clone(), p.rules().display_name.clone()))
        .collect();
    let has_password = user.user.password_hash.is_some();
    let usable = linked
        .iter()
        .filter(|i| providers.by_issuer(&i.issuer).is_some())
        .count();
    let identities = linked
        .into_iter()
        .map(|i| IdentityView {
            can_unlink: has_password
                || usable - usize::from(providers.by_issuer(&i.issuer).is_some()) > 0,
            provider: providers
                .by_issuer(&i.issuer)
                .map(|p| p.rules().display_name.clone())
                .unwrap_or_else(|| format!("{} (no longer configured)", i.provider)),
            email: i.email,
            linked: crate::util::format_ms(i.created_ms),
            id: i.id,
        })
        .collect();
    let pending_email = crate::db::email_verifications::pending_change(
        state.db(),
        &user.user.id,
        &user.user.email,
        crate::util::now_ms(),
    )
    .await?;
    Ok(SettingsPage {
        chrome: Chrome::new(Some(user), csrf),
        pending_email,
        email_errors: FieldErrors::default(),
        new_email: String::new(),
        has_password,
        identities,
        linkable,
        identity_error: None,
        email: user.user.email.clone(),
        name: user.user.display_name.clone(),
        role: user.user.role.as_str(),
        notice: None,
        unverified: state.config().mail.verification != crate::config::mail::Verification::Off
            && user.user.email_verified_ms.is_none(),
        name_error: None,
        password_errors: FieldErrors::default(),
        keys: super::api_keys::views(state, &user.user.id).await?,
        max_keys: MAX_LIVE_KEYS,
        new_key: None,
        key_errors: KeyFieldErrors::default(),
        key_name: String::new(),
        key_expiry: String::new(),
        send_with: users::send_with(state.db(), &user.user.id).await?,
        presets: crate::db::presets::list(state.db(), &user.user.id).await?,
        budgets: crate::calls::budgets::views(
            state.db(),
            state.calls().budgets(),
            Some(&user.user.id),
        )
        .await?,
        time_zone: users::time_zone(state.db(), &user.user.id).await?,
        zones: crate::analytics::filter::zone_names(),
    })
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(q): Query<Notice>,
) -> Result<Response, AppError> {
    let mut p = page(&state, &user, &csrf).await?;
    p.notice = match q.saved.as_deref() {
        Some("profile") => Some("Your profile was saved.".into()),
        Some("password") => {
            Some("Your password was changed. Your other sessions were signed out.".into())
        }
        Some("password-set") => Some(
            "Your password was set: you can also log in with your email address and it now.".into(),
        ),
        Some("key") => {
            Some("The API key was revoked: programs using it are refused from now on.".into())
        }
        Some("verify") => Some("A new verification link is on its way. It works for a day.".into()),
        Some("theme") => Some(format!("The theme is now: {}.", user.theme)),
        Some("chat") => Some("Your chat settings were saved.".into()),
        Some("time-zone") => Some("Your time zone was saved.".into()),
        Some("preset") => Some("The preset was deleted.".into()),
        Some("linked") => Some("The sign-in was linked: you can log in with it from now on.".into()),
        Some("unlinked") => Some("The sign-in was unlinked: it no longer logs in to this account.".into()),
        Some("email") => Some(
            "A link is on its way to the new address. Your address changes when you follow it (within a day)."
                .into(),
        ),
        Some("verify-wait") => Some(
            "A link was sent less than a minute ago; it still works. Check your mail (and spam folder).".into(),
        ),
        _ => None,
    };
    render(StatusCode::OK, &p)
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
}

pub async fn update_profile(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Form(f): Form<ProfileForm>,
) -> Result<Response, AppError> {
    match DisplayName::parse(&f.name) {
        Ok(name) => {
            users::set_display_name(state.db(), &user.user.id, name.as_str()).await?;
            Ok(Redirect::to("/settings?saved=profile").into_response())
        }
        Err(e) => {
            let mut p = page(&state, &user, &csrf).await?;
            p.name = f.name;
            p.name_error = Some(e);
            render(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: axum::http::HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, AppError> {
    if needs_fresh_sign_in(&state, &user).await? {
        let mut p = page(&state, &user, &csrf).await?;
        p.password_errors.form = Some(FRESH_SIGN_IN.into());
        return render(StatusCode::UNPROCESSABLE_ENTITY, &p);
    }
    let first = user.user.password_hash.is_none();
    match accounts::change_password(
        state.db(),
        state.hashes(),
        &user.user,
        &user.session_id,
        &f.current,
        &f.password,
        &f.confirm,
    )
    .await
    {
        Ok(ended) => {
            tracing::info!(user_id = %user.user.id, other_sessions_ended = ended, "password changed");
            let mut res = Redirect::to(if first {
                "/settings?saved=password-set"
            } else {
                "/settings?saved=password"
            })
            .into_response();
            // Device cookies are signed for the password hash: this browser, which just proved it knows
            // the password, stays a known device; the account's other browsers do not.
            if let Some(changed) = users::by_id(state.db(), &user.user.id).await? {
                res.headers_mut().append(
                    axum::http::header::SET_COOKIE,
                    super::accounts::device_cookie(&state, &headers, &changed),
                );
            }
            Ok(res)
        }
        Err(e) => {
            let mut p = page(&state, &user, &csrf).await?;
            p.password_errors = super::accounts::register_refusal(e)?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    current: String,
}

/// `POST /settings/email`: mails a link to the new address; the change waits for it.
pub async fn change_email(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Form(f): Form<EmailForm>,
) -> Result<Response, AppError> {
    if needs_fresh_sign_in(&state, &user).await? {
        let mut p = page(&state, &user, &csrf).await?;
        p.new_email = f.email;
        p.email_errors.form = Some(FRESH_SIGN_IN.into());
        return render(StatusCode::UNPROCESSABLE_ENTITY, &p);
    }
    let refused = match accounts::check_email_change(
        state.db(),
        state.hashes(),
        &user.user,
        &f.email,
        &f.current,
    )
    .await
    {
        Ok(email) => {
            let asked = accounts::verification::request_change(
                state.db(),
                state.mailer(),
                &user.user,
                &email,
                &state.public_url(),
            )
            .await
            .map_err(AppError::Internal)?;
            match asked {
                accounts::verification::ChangeRequest::Sent => {
                    return Ok(Redirect::to("/settings?saved=email").into_response());
                }
                accounts::verification::ChangeRequest::TooSoon => FieldErrors {
                    form: Some(
                        "Links are sent at most once a minute and five times a day. Wait a minute and try \
                         again; a link sent earlier still works for the address it went to."
                            .into(),
                    ),
                    ..Default::default()
                },
            }
        }
        Err(e) => super::accounts::register_refusal(e)?,
    };
    let mut p = page(&state, &user, &csrf).await?;
    p.new_email = f.email;
    p.email_errors = refused;
    render(StatusCode::UNPROCESSABLE_ENTITY, &p)
}

#[derive(Deserialize)]
pub struct ThemeForm {
    #[serde(default)]
    theme: String,
}

/// `POST /settings/theme`: `system`, `light` or `dark`, remembered for the person. The page's script applies it
/// in place; without the script, Settings says it was saved.
pub async fn set_theme(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(f): Form<ThemeForm>,
) -> Result<Response, AppError> {
    if !users::set_theme(state.db(), &user.user.id, &f.theme).await? {
        return Err(AppError::BadRequest(
            "Choose a theme: system, light or dark.".into(),
        ));
    }
    Ok(Redirect::to("/settings?saved=theme").into_response())
}

#[derive(Deserialize)]
pub struct ChatSettingsForm {
    #[serde(default)]
    send_with: String,
}

/// `POST /settings/chat`: which key sends a chat message.
pub async fn set_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(f): Form<ChatSettingsForm>,
) -> Result<Response, AppError> {
    if !users::set_send_with(state.db(), &user.user.id, &f.send_with).await? {
        return Err(AppError::BadRequest(
            "Choose which key sends a message: Enter or Ctrl+Enter.".into(),
        ));
    }
    Ok(Redirect::to("/settings?saved=chat#chat-settings").into_response())
}

#[derive(Deserialize)]
pub struct TimeZoneForm {
    #[serde(default)]
    time_zone: String,
}

/// `POST /settings/time-zone`: the zone analytics counts days and hours in.
pub async fn set_time_zone(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(f): Form<TimeZoneForm>,
) -> Result<Response, AppError> {
    let name = f.time_zone.trim();
    let zone = if name.is_empty() || name == "UTC" {
        String::new()
    } else {
        match crate::analytics::filter::zone(name).and_then(|z| z.iana_name().map(str::to_string)) {
            Some(z) => z,
            None => {
                return Err(AppError::BadRequest(
                    "Choose a time zone from the list, such as Europe/Paris.".into(),
                ));
            }
        }
    };
    users::set_time_zone(state.db(), &user.user.id, &zone).await?;
    Ok(Redirect::to("/settings?saved=time-zone#chat-settings").into_response())
}
