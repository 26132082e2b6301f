//! `/admin/usage`: for a period, per model and per user — calls, input and output tokens, cost, latency p50
//! and p95, error rate, and how the calls, tokens and cost split between the chat pages (UI) and the API.

use super::super::views::dollars;
use super::super::{Chrome, render};
use crate::db::admin::{UsageBy, latency_percentiles, usage};
use crate::util::{civil_from_days, now_ms, parse_date_ms};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::AdminUser;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

pub struct Line {
    pub key: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: String,
    pub p50: String,
    pub p95: String,
    pub error_rate: String,
    /// "UI / API" splits of calls, tokens (input + output) and cost.
    pub calls_split: String,
    pub tokens_split: String,
    pub cost_split: String,
}

#[derive(Template)]
#[template(path = "admin/usage.html")]
struct UsagePage {
    chrome: Chrome,
    from: String,
    to: String,
    /// (title, what the key is, lines)
    sections: Vec<(&'static str, &'static str, Vec<Line>)>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Period {
    from: String,
    to: String,
}

fn day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

async fn lines(state: &AppState, by: UsageBy, from: i64, to: i64) -> Result<Vec<Line>, AppError> {
    let mut out = Vec::new();
    for r in usage(state.db(), by, from, to).await? {
        let p = latency_percentiles(state.db(), by, &r.key, from, to, &[0.5, 0.95]).await?;
        let ms = |v: Option<f64>| {
            v.map(|v| format!("{v:.0} ms"))
                .unwrap_or_else(|| "–".into())
        };
        out.push(Line {
            error_rate: format!("{:.1}%", 100.0 * r.errors as f64 / r.calls.max(1) as f64),
            p50: ms(p[0]),
            p95: ms(p[1]),
            cost: dollars(r.cost_micros),
            calls_split: format!("{} / {}", r.ui_calls, r.api_calls),
            tokens_split: format!("{} / {}", r.ui_tokens, r.api_tokens),
            cost_split: format!(
                "{} / {}",
                dollars(r.ui_cost_micros),
                dollars(r.api_cost_micros)
            ),
            key: r.key,
            calls: r.calls,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
        });
    }
    Ok(out)
}

pub async fn overview(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    Query(p): Query<Period>,
) -> Result<Response, AppError> {
    let now = now_ms();
    let to = if p.to.trim().is_empty() {
        now
    } else {
        parse_date_ms(&p.to)
            .ok_or_else(|| AppError::BadRequest("'To' must be a date like 2026-11-22.".into()))?
            + 86_400_000
    };
    let from = if p.from.trim().is_empty() {
        to - 30 * 86_400_000
    } else {
        parse_date_ms(&p.from)
            .ok_or_else(|| AppError::BadRequest("'From' must be a date like 2026-11-22.".into()))?
    };
    render(
        StatusCode::OK,
        &UsagePage {
            chrome: Chrome::new(Some(&admin), &csrf),
            from: day(from),
            to: day(to - 1),
            sections: vec![
                (
                    "Per model",
                    "Model",
                    lines(&state, UsageBy::Model, from, to).await?,
                ),
                (
                    "Per user",
                    "User",
                    lines(&state, UsageBy::User, from, to).await?,
                ),
            ],
        },
    )
}
