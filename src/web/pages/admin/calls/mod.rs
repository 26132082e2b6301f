//! `/admin/calls`: every call across all users, filtered (user, model, provider, status, source, API key, role,
//! dates, minimum latency / tokens / cost, message text), sorted (time, tokens, latency, cost), keyset-paginated,
//! with the filters in the URL. The CSV of the filtered rows is in [`export`], a call's page and the read-only
//! conversation view in [`detail`].
//!
//! The URL's text is parsed into a [`CallFilter`] here, at the edge; `db::explorer` turns it into SQL.

mod detail;
mod export;

pub use detail::{conversation, detail};
pub use export::csv;

use super::super::views::cost_text;
use super::super::{Chrome, render};
use super::enc;
use crate::db::explorer::{self, ExplorerRow, KeyChoice};
use crate::domain::{CallFilter, CallSort, RawCallFilter, UsageSource};
use crate::util::format_ms;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::AdminUser;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

const PAGE: i64 = 50;

/// The filter of a request, or a 400 that says which field is wrong.
fn parse(raw: &RawCallFilter) -> Result<CallFilter, AppError> {
    CallFilter::parse(raw).map_err(|e| AppError::BadRequest(e.0))
}

/// The URL of `path` with the filters of `raw`, some of them replaced (an empty value removes one).
fn url(raw: &RawCallFilter, path: &str, overrides: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = raw.pairs();
    for &(k, v) in overrides {
        match pairs.iter_mut().find(|(key, _)| *key == k) {
            Some(p) => p.1 = v,
            None => pairs.push((k, v)),
        }
    }
    let qs: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if qs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", qs.join("&"))
    }
}

/// How an API key is named on the admin pages: its name and the end of the secret, never more.
pub fn key_label(name: &str, last4: &str) -> String {
    format!("{name} ({})", crate::domain::api_key::display(last4))
}

/// The key column of a call: its key's name for an API call, a dash for a call from the chat pages.
fn key_cell(r: &ExplorerRow) -> String {
    match (&r.api_key_id, &r.api_key_name) {
        (_, Some(name)) => name.clone(),
        (Some(_), None) => "(deleted key)".into(),
        (None, None) => "—".into(),
    }
}

pub struct RowView {
    pub id: String,
    pub time: String,
    pub email: String,
    pub model: String,
    pub provider: String,
    pub source: String,
    pub key: String,
    pub status: String,
    pub tokens: String,
    pub latency: String,
    pub ttft: String,
    pub cost: String,
    pub conversation_id: Option<String>,
}

fn row_view(r: &ExplorerRow) -> RowView {
    let est = if r.usage_source == UsageSource::Provider {
        ""
    } else {
        "≈"
    };
    RowView {
        id: r.id.clone(),
        time: format_ms(r.sent_ms),
        email: r.email.clone(),
        model: r.model.clone(),
        provider: r.provider.clone(),
        source: r.source.to_string(),
        key: key_cell(r),
        status: match &r.error_class {
            Some(class) => format!("{} ({class})", r.status),
            None => r.status.to_string(),
        },
        tokens: format!(
            "{est}{} / {est}{}",
            r.input_tokens.unwrap_or(0),
            r.output_tokens.unwrap_or(0)
        ),
        latency: r
            .latency_ms
            .map(|l| format!("{l:.0} ms"))
            .unwrap_or_else(|| "–".into()),
        ttft: r
            .ttft_ms
            .map(|l| format!("{l:.0} ms"))
            .unwrap_or_else(|| "–".into()),
        cost: cost_text(
            r.cost_micros,
            [
                r.price_input_micros,
                r.price_cached_input_micros,
                r.price_output_micros,
            ],
            r.status == crate::domain::CallStatus::Pending,
        ),
        conversation_id: r.conversation_id.clone(),
    }
}

/// One entry of the API key filter.
pub struct KeyOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

/// The keys to choose from, `owner — name (sk-…last4)`; a key id typed into the URL that is not among them
/// stays selected, shown by its id.
fn key_options(keys: Vec<KeyChoice>, chosen: &str) -> Vec<KeyOption> {
    let mut options: Vec<KeyOption> = keys
        .into_iter()
        .map(|k| KeyOption {
            selected: k.id == chosen,
            label: format!("{} — {}", k.owner_email, key_label(&k.name, &k.last4)),
            id: k.id,
        })
        .collect();
    if !chosen.is_empty() && !options.iter().any(|o| o.selected) {
        options.push(KeyOption {
            id: chosen.to_string(),
            label: chosen.to_string(),
            selected: true,
        });
    }
    options
}

#[derive(Template)]
#[template(path = "admin/calls.html")]
struct ExplorerPage {
    chrome: Chrome,
    currency: &'static str,
    f: RawCallFilter,
    rows: Vec<RowView>,
    next: Option<String>,
    first: String,
    csv: String,
    sort_links: Vec<(&'static str, String)>,
    models: Vec<String>,
    keys: Vec<KeyOption>,
    /// The filter could not be read: the page shows why, keeps what was typed, and searches nothing.
    error: Option<String>,
}

pub async fn explorer(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    Query(raw): Query<RawCallFilter>,
) -> Result<Response, AppError> {
    let models = state.llm().models().iter().map(|m| m.id.clone()).collect();
    let keys = key_options(explorer::key_choices(state.db()).await?, raw.api_key.trim());
    let filter = match CallFilter::parse(&raw) {
        Ok(f) => f,
        Err(e) => {
            return render(
                StatusCode::BAD_REQUEST,
                &ExplorerPage {
                    chrome: Chrome::new(Some(&admin), &csrf),
                    currency: crate::money::label(),
                    rows: Vec::new(),
                    next: None,
                    first: "/admin/calls".into(),
                    csv: "/admin/calls.csv".into(),
                    sort_links: Vec::new(),
                    models,
                    keys,
                    error: Some(e.0),
                    f: raw,
                },
            );
        }
    };
    let mut rows = explorer::page(state.db(), &filter, PAGE + 1).await?;
    let next = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|r| {
            let after = r.cursor(filter.sort).encode();
            url(&raw, "/admin/calls", &[("after", &after)])
        })
    } else {
        None
    };
    let sort_links = CallSort::ALL
        .into_iter()
        .map(|s| {
            let dir = if filter.sort == s && filter.descending {
                "asc"
            } else {
                "desc"
            };
            let k = s.as_str();
            (
                k,
                url(
                    &raw,
                    "/admin/calls",
                    &[("sort", k), ("dir", dir), ("after", "")],
                ),
            )
        })
        .collect();
    render(
        StatusCode::OK,
        &ExplorerPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            currency: crate::money::label(),
            rows: rows.iter().map(row_view).collect(),
            next,
            first: url(&raw, "/admin/calls", &[("after", "")]),
            csv: url(&raw, "/admin/calls.csv", &[("after", "")]),
            sort_links,
            models,
            keys,
            error: None,
            f: raw,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters_and_replace_the_overridden_ones() {
        let raw = RawCallFilter {
            source: "api".into(),
            api_key: "k1".into(),
            q: "a b".into(),
            after: "1|x".into(),
            ..Default::default()
        };
        assert_eq!(
            url(&raw, "/admin/calls", &[("after", "")]),
            "/admin/calls?source=api&api_key=k1&q=a+b"
        );
        assert_eq!(
            url(&raw, "/admin/calls", &[("sort", "cost"), ("after", "5|y")]),
            "/admin/calls?source=api&api_key=k1&q=a+b&after=5%7Cy&sort=cost"
        );
        assert_eq!(url(&RawCallFilter::default(), "/p", &[]), "/p");
    }

    #[test]
    fn an_unknown_chosen_key_stays_selected() {
        let keys = vec![KeyChoice {
            id: "k1".into(),
            owner_email: "a@example.com".into(),
            name: "laptop".into(),
            last4: "abcd".into(),
        }];
        let o = key_options(keys.clone(), "k1");
        assert_eq!(o.len(), 1);
        assert!(o[0].selected);
        assert_eq!(o[0].label, "a@example.com — laptop (sk-…abcd)");
        let o = key_options(keys, "other");
        assert_eq!(o.len(), 2);
        assert!(!o[0].selected && o[1].selected && o[1].label == "other");
    }
}
