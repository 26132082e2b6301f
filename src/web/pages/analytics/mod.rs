//! `/analytics`: a person's calls (from the chat pages and the API) over a period in their time zone — totals,
//! charts over time, per model, how calls ended, and parameter effects for one model — each chart beside a
//! table of its numbers with a CSV of that table; the calls' whole records as CSV or JSONL. Administrators can
//! look at everyone's calls or one person's.

mod tables;

use super::{Chrome, render};
use crate::analytics::filter::{Analytics, PERIODS, RawAnalytics, Scope, zone_names};
use crate::analytics::{self, Report};
use crate::db::{explorer, users};
use crate::util::now_ms;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::exports::{self, Format};
use crate::web::extract::CurrentUser;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tables::{Section, Table};

/// A figure of the totals row.
pub struct Figure {
    pub label: &'static str,
    pub value: String,
    /// A qualification under the value (empty for none).
    pub note: String,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    chrome: Chrome,
    raw: RawAnalytics,
    /// The filter's query string, for the download links.
    query: String,
    error: Option<String>,
    periods: Vec<(&'static str, &'static str)>,
    /// The period shown, in words.
    period_text: String,
    zones: Vec<String>,
    tz_name: String,
    is_admin: bool,
    scope_text: String,
    /// A remark on the filter (an address no account has).
    notice: Option<String>,
    /// (id, label) of the API keys the filter offers.
    keys: Vec<(String, String)>,
    models: Vec<String>,
    totals: Vec<Figure>,
    over_time: Option<Section>,
    per_model: Option<Section>,
    outcomes: Option<Table>,
    effects_model: Option<String>,
    effects: Vec<Section>,
}

fn parse(raw: &RawAnalytics, user: &CurrentUser, zone: &str) -> Result<Analytics, String> {
    Analytics::parse(raw, &user.user.id, user.user.is_admin(), zone, now_ms()).map_err(|e| e.0)
}

fn totals(r: &Report) -> Vec<Figure> {
    let t = &r.totals;
    let (cost, cost_note) = if t.calls > 0 && t.priced == 0 {
        ("no price configured".to_string(), String::new())
    } else if t.priced < t.calls {
        (
            super::views::dollars(t.cost_micros),
            format!("{} calls without a price", t.calls - t.priced),
        )
    } else {
        (super::views::dollars(t.cost_micros), String::new())
    };
    let n = |v: i64| crate::web::charts::number(v as f64);
    let figure = |label, value| Figure {
        label,
        value,
        note: String::new(),
    };
    vec![
        figure("Calls", n(t.calls)),
        figure("Input tokens", n(t.input_tokens)),
        figure("Output tokens", n(t.output_tokens)),
        figure("Cached input tokens", n(t.cached_tokens)),
        figure("Reasoning tokens", n(t.reasoning_tokens)),
        Figure {
            label: "Cost",
            value: cost,
            note: cost_note,
        },
        figure(
            "Error rate",
            if t.calls == 0 {
                "–".into()
            } else {
                format!("{:.1}%", 100.0 * t.errors as f64 / t.calls as f64)
            },
        ),
    ]
}

async fn key_choices(
    state: &AppState,
    user: &CurrentUser,
    scope: &Scope,
) -> Result<Vec<(String, String)>, AppError> {
    let label = |name: &str, last4: &str| super::admin::calls::key_label(name, last4);
    Ok(match scope {
        Scope::Own => crate::db::api_keys::list_for_user(state.db(), &user.user.id, 200)
            .await?
            .into_iter()
            .map(|k| (k.id, label(&k.name, &k.last4)))
            .collect(),
        _ => explorer::key_choices(state.db())
            .await?
            .into_iter()
            .map(|k| {
                (
                    k.id,
                    format!("{} · {}", k.owner_email, label(&k.name, &k.last4)),
                )
            })
            .collect(),
    })
}

fn period_text(a: &Analytics) -> String {
    let day = |ms: i64| {
        let d = crate::analytics::filter::local_day(&a.tz, ms);
        let (y, m, dd) = crate::util::civil_from_days(d);
        format!("{y:04}-{m:02}-{dd:02}")
    };
    format!("{} to {} ({})", day(a.from_ms), day(a.to_ms - 1), a.tz_name)
}

/// A report runs queries that can take seconds over a large history: it takes one of the heavy-job places the
/// JSON viewer uses (`json_jobs`), waiting at most `json_queue_wait_ms`, so that no one person's reloads can
/// take every core. Busy: 503 with `Retry-After`.
async fn report(state: &AppState, a: &Analytics) -> Result<Report, AppError> {
    let wait = std::time::Duration::from_millis(state.config().json_queue_wait_ms);
    let Ok(Ok(_permit)) =
        tokio::time::timeout(wait, state.json_jobs().clone().acquire_owned()).await
    else {
        return Err(AppError::Busy {
            message: "Analytics is busy with other reports. Try again in a few seconds.".into(),
            retry_after_secs: 5,
        });
    };
    Ok(analytics::report(state.db(), state.analytics(), a).await?)
}

/// `GET /analytics`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(raw): Query<RawAnalytics>,
) -> Result<Response, AppError> {
    let zone = users::time_zone(state.db(), &user.user.id).await?;
    let mut page = AnalyticsPage {
        chrome: Chrome::new(Some(&user), &csrf),
        query: raw.query(),
        raw: raw.clone(),
        error: None,
        periods: PERIODS.to_vec(),
        period_text: String::new(),
        zones: zone_names(),
        tz_name: if zone.is_empty() {
            "UTC".into()
        } else {
            zone.clone()
        },
        is_admin: user.user.is_admin(),
        scope_text: "Your calls".into(),
        notice: None,
        keys: Vec::new(),
        models: state.llm().models().iter().map(|m| m.id.clone()).collect(),
        totals: Vec::new(),
        over_time: None,
        per_model: None,
        outcomes: None,
        effects_model: None,
        effects: Vec::new(),
    };
    let a = match parse(&raw, &user, &zone) {
        Ok(a) => a,
        Err(e) => {
            // The form stays as typed, with the reason; nothing is searched.
            if let Some(z) = crate::analytics::filter::zone(&raw.tz)
                .and_then(|z| z.iana_name().map(str::to_string))
            {
                page.tz_name = z;
            }
            page.error = Some(e);
            page.keys = key_choices(&state, &user, &Scope::Own).await?;
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    let report = report(&state, &a).await?;
    page.keys = key_choices(&state, &user, &a.scope).await?;
    page.scope_text = match &a.scope {
        Scope::Own => "Your calls".into(),
        Scope::Everyone => "Everyone's calls".into(),
        Scope::User(email) => format!("Calls of {email}"),
    };
    if let Scope::User(email) = &a.scope
        && !users::exists(state.db(), email).await?
    {
        page.notice = Some(format!("No account has the address {email}."));
    }
    page.period_text = period_text(&a);
    page.tz_name = a.tz_name.clone();
    for m in &report.models {
        if !page.models.contains(&m.key) {
            page.models.push(m.key.clone());
        }
    }
    page.totals = totals(&report);
    page.over_time = Some(tables::over_time(
        &report,
        crate::money::label(),
        &a.tz_name,
    ));
    page.per_model = Some(tables::models(&report, crate::money::label()));
    page.outcomes = Some(tables::outcomes(&report));
    page.effects = report
        .effects
        .iter()
        .map(|(p, rows)| tables::effects(*p, rows))
        .collect();
    page.effects_model = report.effects_model;
    render(StatusCode::OK, &page)
}

/// `GET /analytics/{file}`: a table's CSV (`time.csv`, `models.csv`, `outcomes.csv`,
/// `effects-temperature.csv`, …) or the calls' records (`calls.csv`, `calls.jsonl`), for the same filter.
pub async fn download(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(file): Path<String>,
    Query(raw): Query<RawAnalytics>,
) -> Result<Response, AppError> {
    let zone = users::time_zone(state.db(), &user.user.id).await?;
    let a = parse(&raw, &user, &zone).map_err(AppError::BadRequest)?;
    match file.as_str() {
        "calls.csv" => {
            return Ok(exports::records(
                state.db(),
                a.calls,
                Format::Csv,
                "llmeta-calls",
            ));
        }
        "calls.jsonl" => {
            return Ok(exports::records(
                state.db(),
                a.calls,
                Format::Jsonl,
                "llmeta-calls",
            ));
        }
        _ => {}
    }
    let Some(name) = file.strip_suffix(".csv") else {
        return Err(AppError::NotFound);
    };
    let report = report(&state, &a).await?;
    let table = match name {
        "time" => tables::over_time(&report, crate::money::label(), &a.tz_name).table,
        "models" => tables::models(&report, crate::money::label()).table,
        "outcomes" => tables::outcomes(&report),
        _ => {
            let param = name
                .strip_prefix("effects-")
                .and_then(crate::analytics::effects::Param::parse)
                .ok_or(AppError::NotFound)?;
            report
                .effects
                .iter()
                .find(|(p, _)| *p == param)
                .map(|(p, rows)| tables::effects(*p, rows).table)
                .ok_or(AppError::NotFound)?
        }
    };
    Ok(exports::csv_file(
        table.csv(),
        &format!("llmeta-{}", table.name),
    ))
}
