//! The HTTP surface: router, middleware stack, pages and JSON routes.

pub mod api;
pub mod assets;
pub mod auth;
pub mod charts;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod exports;
pub mod extract;
pub mod health;
pub mod highlight;
pub mod ip_limit;
pub mod live;
pub mod markdown;
pub mod nul;
pub mod pages;
pub mod security;
pub mod serve;
pub mod state;

pub use state::AppState;
pub mod stream;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// All routes with the middleware stack, outermost first: request id → trace span → security headers →
/// error rendering → panic catcher → CSRF.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let routes = Router::new()
        .route("/", get(pages::home::index))
        .route("/setup", get(pages::setup::form).post(pages::setup::submit))
        .route(
            "/accounts/login",
            get(pages::accounts::login_form).post(pages::accounts::login),
        )
        .route(
            "/accounts/forgot",
            get(pages::accounts::forgot_form).post(pages::accounts::forgot),
        )
        .route(
            "/accounts/signup",
            get(pages::accounts::signup_form).post(pages::accounts::signup),
        )
        .route("/accounts/logout", post(pages::accounts::logout))
        .route("/auth/{name}/login", get(pages::sso::login))
        .route("/auth/{name}/callback", get(pages::sso::callback))
        .route("/auth/{name}/link", post(pages::sso::link))
        .route(
            "/auth/link",
            get(pages::sso::pending).post(pages::sso::confirm),
        )
        .route("/settings/identities/{id}/unlink", post(pages::sso::unlink))
        .route("/settings/email", post(pages::settings::change_email))
        .route("/settings/theme", post(pages::settings::set_theme))
        .route("/settings/chat", post(pages::settings::set_chat))
        .route("/settings/time-zone", post(pages::settings::set_time_zone))
        .route("/analytics", get(pages::analytics::show))
        .route("/analytics/{file}", get(pages::analytics::download))
        .route("/settings", get(pages::settings::show))
        .route("/settings/profile", post(pages::settings::update_profile))
        .route("/settings/password", post(pages::settings::change_password))
        .route("/settings/keys", post(pages::api_keys::create))
        .route("/settings/keys/{id}/revoke", post(pages::api_keys::revoke))
        .route(
            "/chat",
            get(pages::chat::new_page).post(pages::chat::send_new),
        )
        .route("/c/{id}", get(pages::chat::show).post(pages::chat::send))
        .route("/c/{id}/regenerate", post(pages::chat::regenerate))
        .route("/c/{id}/edit", post(pages::chat::edit))
        .route("/presets", post(pages::chat::save_preset))
        .route("/presets/{id}/delete", post(pages::chat::delete_preset))
        .route("/c/{id}/branch", post(pages::chat::branch))
        .route("/c/{id}/live", get(stream::follow))
        .route("/c/{id}/stop", post(stream::stop))
        .route("/c/{id}/rename", post(pages::history::rename))
        .route("/c/{id}/pin", post(pages::history::pin))
        .route("/c/{id}/archive", post(pages::history::archive))
        .route(
            "/c/{id}/delete",
            get(pages::history::confirm_delete).post(pages::history::delete),
        )
        .route("/history", get(pages::history::list))
        .route(
            "/files",
            post(pages::files::upload).layer(DefaultBodyLimit::max(
                (state.config().max_upload_bytes
                    * u64::from(state.config().uploads.max_files_per_message)
                    + 1024 * 1024) as usize,
            )),
        )
        .route("/files/{id}", get(pages::files::download))
        .route("/json", get(pages::json_viewer::index))
        .route(
            "/json/upload",
            post(pages::json_viewer::upload).layer(DefaultBodyLimit::max(
                (state.config().max_upload_bytes + 1024 * 1024) as usize,
            )),
        )
        .route(
            "/json/paste",
            post(pages::json_viewer::paste).layer(DefaultBodyLimit::max(
                (state.config().max_upload_bytes + 1024 * 1024) as usize,
            )),
        )
        .route("/json/f/{id}", get(pages::json_viewer::view_file))
        .route("/json/f/{id}/delete", post(pages::json_viewer::delete))
        .route("/json/m/{id}", get(pages::json_viewer::view_message))
        .route("/files/{id}/delete", post(pages::files::remove))
        .route("/admin", get(pages::admin::overview))
        .route(
            "/admin/users",
            get(pages::admin::users::list).post(pages::admin::users::create),
        )
        .route("/admin/users/{id}", get(pages::admin::users::show))
        .route(
            "/admin/users/{id}/active",
            post(pages::admin::users::set_active),
        )
        .route(
            "/admin/users/{id}/role",
            post(pages::admin::users::set_role),
        )
        .route(
            "/admin/users/{id}/reset",
            post(pages::admin::users::send_reset),
        )
        .route(
            "/admin/users/{id}/delete",
            post(pages::admin::users::delete),
        )
        .route("/admin/calls", get(pages::admin::calls::explorer))
        .route("/admin/calls.csv", get(pages::admin::calls::csv))
        .route("/admin/calls/{id}", get(pages::admin::calls::detail))
        .route(
            "/admin/conversations/{id}",
            get(pages::admin::calls::conversation),
        )
        .route("/admin/usage", get(pages::admin::usage::overview))
        .route("/admin/keys", get(pages::admin::keys::list))
        .route(
            "/admin/providers",
            get(pages::admin::providers::list).post(pages::admin::providers::save_provider),
        )
        .route(
            "/admin/providers/{name}/delete",
            post(pages::admin::providers::delete_provider),
        )
        .route("/admin/models", post(pages::admin::providers::save_model))
        .route("/admin/prices", post(pages::admin::providers::save_price))
        .route(
            "/admin/budgets",
            get(pages::admin::budgets::list).post(pages::admin::budgets::save),
        )
        .route(
            "/admin/budgets/{id}/delete",
            post(pages::admin::budgets::delete),
        )
        .route(
            "/admin/prices/{id}/delete",
            post(pages::admin::providers::delete_price),
        )
        .route("/admin/keys/{id}/revoke", post(pages::admin::keys::revoke))
        .route(
            "/accounts/verify/resend",
            post(pages::accounts::resend_verification),
        )
        .route("/accounts/verify/{token}", get(pages::accounts::verify))
        .route(
            "/accounts/reset/{token}",
            get(pages::accounts::reset_form).post(pages::accounts::reset),
        )
        .route("/v1/models", get(api::models::list))
        .route("/health", get(health::get).post(health::post))
        .route("/v1/chat/completions", post(api::chat_completions::create))
        .route("/api/openapi.json", get(api::openapi::serve))
        .route("/static/{*file}", get(assets::serve))
        .fallback(pages::not_found);

    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::protect,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ip_limit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            nul::refuse,
        ))
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<_>| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            // The path only: query strings may carry tokens; so may reset links' paths.
                            let path = pages::accounts::loggable_path(req.uri().path());
                            tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(axum::middleware::from_fn(security::headers))
                .layer(axum::middleware::from_fn(error::render_errors))
                .layer(CatchPanicLayer::custom(error::panic_response)),
        )
        .with_state(state)
}
