//! `/admin/calls`: every call across all users, filtered (user, model, provider, status, source, role, dates,
//! minimum latency / tokens / cost, message text), sorted (time, tokens, latency, cost), keyset-paginated, with
//! filters in the URL; a detail page; a streamed CSV of the filtered rows; a read-only conversation view.

use super::super::views::{MessageView, cost_label, cost_text, dollars};
use super::super::{Chrome, render};
use super::enc;
use crate::db::admin::{Arg, EXPLORER_COLUMNS, ExplorerRow, Where, bind_all};
use crate::db::calls::{self, CallRecord};
use crate::db::{conversations, messages};
use crate::util::{format_ms, parse_date_ms, rfc3339_ms};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{AdminUser, IdPath, is_id};
use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt as _;
use serde::Deserialize;
use std::collections::HashMap;

const PAGE: i64 = 50;

/// The explorer's filters, exactly as they appear in the URL.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub struct Filter {
    pub user: String,
    pub model: String,
    pub provider: String,
    pub status: String,
    pub source: String,
    pub role: String,
    pub from: String,
    pub to: String,
    pub min_latency: String,
    pub min_tokens: String,
    pub min_cost: String,
    pub q: String,
    pub sort: String,
    pub dir: String,
    pub after: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    Time,
    Tokens,
    Latency,
    Cost,
}

impl Sort {
    fn parse(s: &str) -> Sort {
        match s {
            "tokens" => Sort::Tokens,
            "latency" => Sort::Latency,
            "cost" => Sort::Cost,
            _ => Sort::Time,
        }
    }
    fn key(self) -> &'static str {
        match self {
            Sort::Time => "time",
            Sort::Tokens => "tokens",
            Sort::Latency => "latency",
            Sort::Cost => "cost",
        }
    }
    fn sql(self) -> &'static str {
        match self {
            Sort::Time => "c.sent_ms",
            Sort::Tokens => "(COALESCE(c.input_tokens, 0) + COALESCE(c.output_tokens, 0))",
            Sort::Latency => "COALESCE(c.latency_ms, -1)",
            Sort::Cost => "COALESCE(c.cost_micros, -1)",
        }
    }
    fn value(self, r: &ExplorerRow) -> String {
        match self {
            Sort::Time => r.sent_ms.to_string(),
            Sort::Tokens => {
                (r.input_tokens.unwrap_or(0) + r.output_tokens.unwrap_or(0)).to_string()
            }
            Sort::Latency => r.latency_ms.unwrap_or(-1.0).to_string(),
            Sort::Cost => r.cost_micros.unwrap_or(-1).to_string(),
        }
    }
}

fn bad(msg: &str) -> AppError {
    AppError::BadRequest(msg.to_string())
}

impl Filter {
    fn descending(&self) -> bool {
        self.dir != "asc"
    }

    /// The WHERE clause (without the keyset cursor).
    fn to_where(&self) -> Result<Where, AppError> {
        let mut w = Where::default();
        let text = |s: &str| s.trim().to_string();
        if !self.user.trim().is_empty() {
            // Resolved once by a scalar subquery, so the planner walks calls_user_sent in time order
            // (an OR across the join would sort all of the user's calls).
            w.push(
                "c.user_id = (SELECT id FROM users WHERE email = {} OR id = {} LIMIT 1)",
                Arg::Text(text(&self.user).to_lowercase()),
            );
            let n = w.args.len();
            let last = w.clauses.len() - 1;
            w.clauses[last] = format!(
                "c.user_id = (SELECT id FROM users WHERE email = ${n} OR id = ${n} LIMIT 1)"
            );
        }
        for (value, column) in [
            (&self.model, "c.model"),
            (&self.provider, "c.provider"),
            (&self.status, "c.status"),
            (&self.source, "c.source"),
            (&self.role, "u.role"),
        ] {
            if !value.trim().is_empty() {
                w.push(&format!("{column} = {{}}"), Arg::Text(text(value)));
            }
        }
        if !self.from.trim().is_empty() {
            let ms = parse_date_ms(&self.from)
                .ok_or_else(|| bad("'From' must be a date like 2026-11-22."))?;
            w.push("c.sent_ms >= {}", Arg::Int(ms));
        }
        if !self.to.trim().is_empty() {
            let ms = parse_date_ms(&self.to)
                .ok_or_else(|| bad("'To' must be a date like 2026-11-22."))?;
            w.push("c.sent_ms < {}", Arg::Int(ms + 86_400_000));
        }
        if !self.min_latency.trim().is_empty() {
            let v: f64 = self
                .min_latency
                .trim()
                .parse()
                .map_err(|_| bad("Minimum latency must be a number of milliseconds."))?;
            w.push("c.latency_ms >= {}", Arg::Float(v));
        }
        if !self.min_tokens.trim().is_empty() {
            let v: i64 = self
                .min_tokens
                .trim()
                .parse()
                .map_err(|_| bad("Minimum tokens must be a whole number."))?;
            // "+ 0" keeps SQLite off the tokens sort index here: walking the time index and filtering is
            // far cheaper than sorting every match by time.
            w.push(
                "(COALESCE(c.input_tokens, 0) + COALESCE(c.output_tokens, 0)) + 0 >= {}",
                Arg::Int(v),
            );
        }
        if !self.min_cost.trim().is_empty() {
            let v: f64 = self
                .min_cost
                .trim()
                .parse()
                .map_err(|_| bad("Minimum cost must be an amount in dollars."))?;
            w.push(
                "c.cost_micros >= {}",
                Arg::Int((v * 1_000_000.0).round() as i64),
            );
        }
        if !self.q.trim().is_empty() {
            let pattern = format!(
                "%{}%",
                self.q
                    .trim()
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            w.push(
                "EXISTS (SELECT 1 FROM messages m WHERE (m.id = c.request_message_id OR m.id = c.response_message_id) \
                 AND LOWER(m.content) LIKE {} ESCAPE '\\')",
                Arg::Text(pattern),
            );
        }
        Ok(w)
    }

    /// The URL of the explorer with these filters and some overrides.
    fn url(&self, path: &str, overrides: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("user", self.user.clone()),
            ("model", self.model.clone()),
            ("provider", self.provider.clone()),
            ("status", self.status.clone()),
            ("source", self.source.clone()),
            ("role", self.role.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("min_latency", self.min_latency.clone()),
            ("min_tokens", self.min_tokens.clone()),
            ("min_cost", self.min_cost.clone()),
            ("q", self.q.clone()),
            ("sort", self.sort.clone()),
            ("dir", self.dir.clone()),
        ];
        for (k, v) in overrides {
            if let Some(p) = pairs.iter_mut().find(|(key, _)| key == k) {
                p.1 = v.to_string();
            } else {
                pairs.push((k, v.to_string()));
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
}

/// The SQL and arguments for a page (or, with `limit` None, for all rows: the CSV).
fn explorer_query(f: &Filter, limit: Option<i64>) -> Result<(String, Vec<Arg>), AppError> {
    let sort = Sort::parse(&f.sort);
    let desc = f.descending();
    let mut w = f.to_where()?;
    if let Some((value, id)) = f.after.split_once('|') {
        if !is_id(id) {
            return Err(bad("Invalid page link."));
        }
        let cmp = if desc { "<" } else { ">" };
        let value_arg = match sort {
            // Only finite numbers: SQLite binds NaN as NULL and PostgreSQL sorts it last, so `NaN` or
            // `inf` would page differently on the two databases.
            Sort::Latency => Arg::Float(
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| bad("Invalid page link."))?,
            ),
            _ => Arg::Int(value.parse().map_err(|_| bad("Invalid page link."))?),
        };
        let n = w.next_placeholder();
        let placeholder = if matches!(value_arg, Arg::Float(_)) {
            format!("CAST(${n} AS DOUBLE PRECISION)")
        } else {
            format!("${n}")
        };
        w.clauses.push(format!(
            "({expr} {cmp} {placeholder} OR ({expr} = {placeholder} AND c.id {cmp} ${}))",
            n + 1,
            expr = sort.sql()
        ));
        w.args.push(value_arg);
        w.args.push(Arg::Text(id.to_string()));
    }
    let dir = if desc { "DESC" } else { "ASC" };
    let mut sql = format!(
        "SELECT {EXPLORER_COLUMNS} FROM calls c JOIN users u ON u.id = c.user_id {} ORDER BY {} {dir}, c.id {dir}",
        w.sql(),
        sort.sql()
    );
    if let Some(l) = limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    Ok((sql, w.args))
}

pub struct RowView {
    pub id: String,
    pub time: String,
    pub email: String,
    pub model: String,
    pub provider: String,
    pub source: String,
    pub status: String,
    pub tokens: String,
    pub latency: String,
    pub ttft: String,
    pub cost: String,
    pub conversation_id: Option<String>,
}

fn row_view(r: &ExplorerRow) -> RowView {
    let est = if r.usage_source == "provider" {
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
        source: r.source.clone(),
        status: match &r.error_class {
            Some(class) => format!("{} ({class})", r.status),
            None => r.status.clone(),
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
            r.status == "pending",
        ),
        conversation_id: r.conversation_id.clone(),
    }
}

#[derive(Template)]
#[template(path = "admin/calls.html")]
struct ExplorerPage {
    chrome: Chrome,
    f: Filter,
    rows: Vec<RowView>,
    next: Option<String>,
    first: String,
    csv: String,
    sort_links: Vec<(&'static str, String)>,
    models: Vec<String>,
}

pub async fn explorer(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    Query(f): Query<Filter>,
) -> Result<Response, AppError> {
    let (sql, args) = explorer_query(&f, Some(PAGE + 1))?;
    let mut rows: Vec<ExplorerRow> = bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &args)
        .fetch_all(&state.db().pool)
        .await?;
    let sort = Sort::parse(&f.sort);
    let next = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|r| {
            f.url(
                "/admin/calls",
                &[("after", &format!("{}|{}", sort.value(r), r.id))],
            )
        })
    } else {
        None
    };
    let sort_links = ["time", "tokens", "latency", "cost"]
        .into_iter()
        .map(|k| {
            let dir = if sort.key() == k && f.descending() {
                "asc"
            } else {
                "desc"
            };
            (
                k,
                f.url("/admin/calls", &[("sort", k), ("dir", dir), ("after", "")]),
            )
        })
        .collect();
    let models = state.llm().models().iter().map(|m| m.id.clone()).collect();
    render(
        StatusCode::OK,
        &ExplorerPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            rows: rows.iter().map(row_view).collect(),
            next,
            first: f.url("/admin/calls", &[("after", "")]),
            csv: f.url("/admin/calls.csv", &[("after", "")]),
            sort_links,
            models,
            f,
        },
    )
}

/// A CSV cell: quoted when needed, and formula-looking text neutralised (a leading `'`), since spreadsheets
/// run cells that start with `=`, `+`, `-` or `@`.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

const CSV_HEADER: &str = "call_id,sent_at,user,user_role,source,provider,model,status,error_class,input_tokens,\
                          output_tokens,usage_source,latency_ms,ttft_ms,cost_usd,finish_reason,temperature,max_tokens,\
                          conversation_id\n";

fn csv_line(r: &ExplorerRow) -> String {
    let opt_i = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let opt_f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let cells = [
        r.id.clone(),
        rfc3339_ms(r.sent_ms),
        r.email.clone(),
        r.user_role.clone(),
        r.source.clone(),
        r.provider.clone(),
        r.model.clone(),
        r.status.clone(),
        r.error_class.clone().unwrap_or_default(),
        opt_i(r.input_tokens),
        opt_i(r.output_tokens),
        r.usage_source.clone(),
        opt_f(r.latency_ms),
        opt_f(r.ttft_ms),
        r.cost_micros
            .map(|c| format!("{:.6}", c as f64 / 1e6))
            .unwrap_or_default(),
        r.finish_reason.clone().unwrap_or_default(),
        r.temperature.map(|t| t.to_string()).unwrap_or_default(),
        opt_i(r.max_tokens),
        r.conversation_id.clone().unwrap_or_default(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// The filtered rows as CSV, streamed from the database: never the whole result in memory.
pub async fn csv(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(f): Query<Filter>,
) -> Result<Response, AppError> {
    let (sql, args) = explorer_query(&f, None)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let pool = state.db().pool.clone();
    tokio::spawn(async move {
        if tx.send(Ok(CSV_HEADER.to_string())).await.is_err() {
            return;
        }
        let mut rows = bind_all(
            sqlx::query_as::<_, ExplorerRow>(sqlx::AssertSqlSafe(sql)),
            &args,
        )
        .fetch(&pool);
        while let Some(row) = rows.next().await {
            let item = match row {
                Ok(r) => Ok(csv_line(&r)),
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed");
                    Err(std::io::Error::other("export failed"))
                }
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return; // the client went away, or the query failed
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"llmeta-calls.csv\""),
    );
    Ok(res)
}

#[derive(Template)]
#[template(path = "admin/call.html")]
struct CallPage {
    chrome: Chrome,
    c: CallRecord,
    email: String,
    fields: Vec<(&'static str, String)>,
    request_pretty: String,
    question: Option<String>,
    answer: Option<String>,
    files: Vec<(String, i64, i64)>,
}

pub async fn detail(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let c = calls::get(state.db(), &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let email = crate::db::users::by_id(state.db(), &c.user_id)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    let message = |mid: Option<String>| {
        let db = state.db().clone();
        async move {
            match mid {
                Some(mid) => {
                    sqlx::query_scalar::<_, String>(
                        "SELECT COALESCE(model_content, content) FROM messages WHERE id = $1",
                    )
                    .bind(mid)
                    .fetch_optional(&db.pool)
                    .await
                }
                None => Ok(None),
            }
        }
    };
    let question = message(c.request_message_id.clone()).await?;
    let answer = message(c.response_message_id.clone()).await?;
    let files: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT name, tokens_sent, tokens_total FROM call_files WHERE call_id = $1")
            .bind(&c.id)
            .fetch_all(&state.db().pool)
            .await?;
    let request_pretty = serde_json::from_str::<serde_json::Value>(&c.request_json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| c.request_json.clone());
    let o = |v: Option<String>| v.unwrap_or_else(|| "–".into());
    let oi = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "–".into());
    let of = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
    let ot = |v: Option<i64>| v.map(rfc3339_ms).unwrap_or_else(|| "–".into());
    let fields = vec![
        ("Status", c.status.to_string()),
        ("Error class", o(c.error_class.clone())),
        ("Error", o(c.error_message.clone())),
        ("Notes", o(c.notes.clone())),
        ("HTTP status", oi(c.http_status)),
        ("Source", c.source.to_string()),
        ("Provider", c.provider.clone()),
        ("Model (requested)", c.model.clone()),
        ("Model (sent)", c.upstream_model.clone()),
        ("Model (responded)", o(c.response_model.clone())),
        ("Provider response id", o(c.provider_response_id.clone())),
        ("Streamed", (c.streamed == 1).to_string()),
        ("Parameters not sent", c.params_dropped.clone()),
        ("Context messages", c.context_messages.to_string()),
        ("Context messages left out", c.context_dropped.to_string()),
        ("Input tokens", oi(c.input_tokens)),
        ("Cached input tokens", oi(c.cached_input_tokens)),
        ("Output tokens", oi(c.output_tokens)),
        ("Reasoning tokens", oi(c.reasoning_tokens)),
        ("Token counts from", c.usage_source.to_string()),
        ("Sent", rfc3339_ms(c.sent_ms)),
        ("First byte", ot(c.first_byte_ms)),
        ("First token", ot(c.first_token_ms)),
        ("Ended", ot(c.ended_ms)),
        ("Latency ms", of(c.latency_ms)),
        ("First byte ms", of(c.first_byte_latency_ms)),
        ("TTFT ms", of(c.ttft_ms)),
        ("Tokens/s", of(c.tokens_per_sec)),
        ("Finish reason", o(c.finish_reason.clone())),
        ("Cost", cost_label(&c)),
        (
            "Prices per 1M (in / cached / out)",
            format!(
                "{} / {} / {}",
                dollars(c.price_input_micros),
                dollars(c.price_cached_input_micros),
                dollars(c.price_output_micros)
            ),
        ),
    ];
    render(
        StatusCode::OK,
        &CallPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            email,
            fields,
            request_pretty,
            question,
            answer,
            files,
            c,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/conversation.html")]
struct ConversationPage {
    chrome: Chrome,
    title: String,
    owner: String,
    messages: Vec<MessageView>,
}

/// Any user's conversation, read-only, for administrators.
pub async fn conversation(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    let owner_id: String = sqlx::query_scalar("SELECT user_id FROM conversations WHERE id = $1")
        .bind(&id)
        .fetch_optional(&state.db().pool)
        .await?
        .ok_or(AppError::NotFound)?;
    let c = conversations::get_owned(state.db(), &id, &owner_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let owner = crate::db::users::by_id(state.db(), &owner_id)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    let all = messages::all_in(state.db(), &id).await?;
    let branch = messages::branch(&all, c.head_id.as_deref());
    let calls: HashMap<String, CallRecord> = calls::for_conversation(state.db(), &id)
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let views = branch
        .iter()
        .map(|m| {
            MessageView::new(
                m,
                m.call_id.as_ref().and_then(|i| calls.get(i)),
                state.llm(),
            )
        })
        .collect();
    render(
        StatusCode::OK,
        &ConversationPage {
            chrome: Chrome::new(Some(&admin), &csrf),
            title: c.title,
            owner,
            messages: views,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn formulas_are_neutralised_and_quotes_escaped() {
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@cmd"), "'@cmd");
        assert_eq!(csv_cell("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
    }
}
