//! Call records as files: CSV (a spreadsheet's view, formula cells neutralised) and JSONL (one JSON object per
//! call, typed values), streamed from the database as it yields the rows. Administrators export anyone's calls
//! from the call explorer; everyone exports their own from the analytics page.

use crate::db::Db;
use crate::db::explorer::{self, RecordRow};
use crate::domain::CallFilter;
use crate::util::rfc3339_ms;
use axum::body::Body;
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

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// The columns of the CSV. The first twenty are those the explorer's CSV always had, in their order; new
/// columns go at the end, so that sheets reading the older columns by position keep working.
const CSV_HEADER: &str = "call_id,sent_at,user,user_role,source,provider,model,status,error_class,input_tokens,\
     output_tokens,usage_source,latency_ms,ttft_ms,cost,finish_reason,temperature,max_tokens,conversation_id,\
     api_key,top_p,top_k,seed,presence_penalty,frequency_penalty,stop,system_prompt,cached_input_tokens,\
     reasoning_tokens,tokens_per_sec,time_to_first_byte_ms,streamed,http_status,error_message,upstream_model,\
     response_model,params_dropped,context_messages,context_dropped,price_input_per_mtok,\
     price_cached_input_per_mtok,price_output_per_mtok\n";

fn money(micros: i64) -> String {
    format!("{:.6}", micros as f64 / 1e6)
}

fn csv_line(r: &RecordRow) -> String {
    let i = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let x = |v: &Option<String>| v.clone().unwrap_or_default();
    let cells = [
        r.id.clone(),
        rfc3339_ms(r.sent_ms),
        r.email.clone(),
        r.user_role.clone(),
        r.source.clone(),
        r.provider.clone(),
        r.model.clone(),
        r.status.clone(),
        x(&r.error_class),
        i(r.input_tokens),
        i(r.output_tokens),
        r.usage_source.clone(),
        f(r.latency_ms),
        f(r.ttft_ms),
        // Empty when the model had no price: unknown, not zero.
        r.cost_micros.map(money).unwrap_or_default(),
        x(&r.finish_reason),
        r.temperature.map(|t| t.to_string()).unwrap_or_default(),
        i(r.max_tokens),
        x(&r.conversation_id),
        x(&r.api_key_name),
        r.top_p.map(|t| t.to_string()).unwrap_or_default(),
        i(r.top_k),
        i(r.seed),
        r.presence_penalty
            .map(|t| t.to_string())
            .unwrap_or_default(),
        r.frequency_penalty
            .map(|t| t.to_string())
            .unwrap_or_default(),
        x(&r.stop),
        x(&r.system_prompt),
        i(r.cached_input_tokens),
        i(r.reasoning_tokens),
        f(r.tokens_per_sec),
        f(r.first_byte_latency_ms),
        if r.streamed != 0 { "yes" } else { "no" }.into(),
        i(r.http_status),
        x(&r.error_message),
        r.upstream_model.clone(),
        x(&r.response_model),
        r.params_dropped.clone(),
        r.context_messages.to_string(),
        r.context_dropped.to_string(),
        money(r.price_input_micros),
        money(r.price_cached_input_micros),
        money(r.price_output_micros),
    ];
    let mut line = cells
        .iter()
        .map(|c| {
            // Numbers (a negative penalty, say) stay numbers; text is neutralised.
            if !c.is_empty() && c.parse::<f64>().is_ok() {
                c.clone()
            } else {
                csv_cell(c)
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// One call as a JSON object: the record's columns with typed values, the time as RFC 3339 too, the stop
/// sequences as an array.
fn jsonl_line(r: &RecordRow) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("sent_at".into(), rfc3339_ms(r.sent_ms).into());
        o.insert("streamed".into(), (r.streamed != 0).into());
        let stop = r
            .stop
            .as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .unwrap_or(serde_json::Value::Null);
        o.insert("stop".into(), stop);
    }
    let mut line = v.to_string();
    line.push('\n');
    line
}

/// The records of `filter` as a download named `name` (without extension).
pub fn records(db: &Db, filter: CallFilter, format: Format, name: &str) -> Response {
    // Bounded: a slow client holds the query back instead of the rows piling up here.
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let db = db.clone();
    tokio::spawn(async move { explorer::export_records(&db, &filter, tx).await });
    let lines = futures_util::stream::unfold(rx, move |mut rx| async move {
        let item = match rx.recv().await? {
            Ok(r) => Ok(match format {
                Format::Csv => csv_line(&r),
                Format::Jsonl => jsonl_line(&r),
            }),
            Err(e) => {
                tracing::error!(error = %e, "export failed");
                Err(std::io::Error::other("export failed"))
            }
        };
        Some((item, rx))
    });
    let head = match format {
        Format::Csv => CSV_HEADER,
        Format::Jsonl => "",
    };
    let head = futures_util::stream::once(async move { Ok(head.to_string()) });
    let mut res = Response::new(Body::from_stream(head.chain(lines)));
    let (mime, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Jsonl => ("application/x-ndjson; charset=utf-8", "jsonl"),
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// A small CSV made in memory (an analytics table) as a download named `name` (without extension).
pub fn csv_file(body: String, name: &str) -> Response {
    let mut res = Response::new(Body::from(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
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
