//! `/admin/calls.csv`: the explorer's filtered calls as CSV, streamed from the database as it yields them.

use super::parse;
use crate::db::explorer::{self, ExplorerRow};
use crate::domain::RawCallFilter;
use crate::util::rfc3339_ms;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::AdminUser;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::StreamExt as _;

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

/// New columns go at the end, so that sheets reading the older columns by position keep working.
const CSV_HEADER: &str = "call_id,sent_at,user,user_role,source,provider,model,status,error_class,input_tokens,\
                          output_tokens,usage_source,latency_ms,ttft_ms,cost_usd,finish_reason,temperature,max_tokens,\
                          conversation_id,api_key\n";

fn csv_line(r: &ExplorerRow) -> String {
    let opt_i = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let opt_f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let cells = [
        r.id.clone(),
        rfc3339_ms(r.sent_ms),
        r.email.clone(),
        r.user_role.clone(),
        r.source.to_string(),
        r.provider.clone(),
        r.model.clone(),
        r.status.to_string(),
        r.error_class.clone().unwrap_or_default(),
        opt_i(r.input_tokens),
        opt_i(r.output_tokens),
        r.usage_source.to_string(),
        opt_f(r.latency_ms),
        opt_f(r.ttft_ms),
        r.cost_micros
            .map(|c| format!("{:.6}", c as f64 / 1e6))
            .unwrap_or_default(),
        r.finish_reason.clone().unwrap_or_default(),
        r.temperature.map(|t| t.to_string()).unwrap_or_default(),
        opt_i(r.max_tokens),
        r.conversation_id.clone().unwrap_or_default(),
        // The key's name only: its id, lookup and hash stay out of exports.
        r.api_key_name.clone().unwrap_or_default(),
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
    Query(raw): Query<RawCallFilter>,
) -> Result<Response, AppError> {
    let filter = parse(&raw)?;
    // Bounded: a slow client holds the query back instead of the rows piling up here.
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let db = state.db().clone();
    tokio::spawn(async move { explorer::export(&db, &filter, tx).await });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = match rx.recv().await? {
            Ok(r) => Ok(csv_line(&r)),
            Err(e) => {
                tracing::error!(error = %e, "CSV export failed");
                Err(std::io::Error::other("export failed"))
            }
        };
        Some((item, rx))
    });
    let head = futures_util::stream::once(async { Ok(CSV_HEADER.to_string()) });
    let mut res = Response::new(Body::from_stream(head.chain(lines)));
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
