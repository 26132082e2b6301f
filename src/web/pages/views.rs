//! View models shared by the chat page and the streamed answer: one message block, one way.

use crate::db::calls::CallRecord;
use crate::db::messages::Message;
use crate::llm::registry::Registry;
use crate::web::markdown;
use askama::Template;

/// An attached file as a chip: name, size, token estimate, and what was sent when it was cut.
pub struct FileChip {
    pub id: String,
    pub name: String,
    pub size: String,
    pub tokens: i64,
    pub tokens_sent: Option<i64>,
    pub is_json: bool,
    /// The size of the text kept ("2.0 MB") when only the beginning of the file's text was kept.
    pub text_cut: Option<String>,
}

impl FileChip {
    pub fn new(f: &crate::db::files::FileRow, tokens_sent: Option<i64>) -> FileChip {
        FileChip {
            id: f.id.clone(),
            name: f.name.clone(),
            size: human_size(f.size_bytes),
            tokens: f.tokens,
            tokens_sent: tokens_sent.filter(|s| *s < f.tokens),
            is_json: f.kind == "json",
            text_cut: f.text_cut_bytes.map(human_size),
        }
    }
}

/// A moment as pages show it: `<time datetime="…">2026-12-07 15:48 UTC</time>`, which the page's script turns
/// into "3 min ago" (recent) or the browser's local time, the exact time on hover. Written with `|safe`: its
/// text is made of digits and fixed words only.
#[derive(Debug, Clone)]
pub struct When(Option<i64>);

impl When {
    pub fn at(ms: i64) -> When {
        When(Some(ms))
    }
    /// `never` when there is no moment.
    pub fn maybe(ms: Option<i64>) -> When {
        When(ms)
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ms) => write!(
                f,
                "<time datetime=\"{}\">{}</time>",
                crate::util::rfc3339_ms(ms),
                crate::util::format_ms(ms)
            ),
            None => f.write_str("never"),
        }
    }
}

pub fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// A message as the page shows it.
pub struct MessageView {
    pub files: Vec<FileChip>,
    /// The answer parses as JSON: offer the viewer.
    pub is_json: bool,
    pub id: String,
    pub is_user: bool,
    /// Raw text (user messages are shown escaped; also the Copy button's source).
    pub text: String,
    /// Sanitised HTML of an answer.
    pub html: String,
    pub reasoning: String,
    pub status: String,
    pub meta: Option<MetaView>,
    /// Where this message is one of several versions (edits of a question, answers to it): which, of how many.
    pub fork: Option<Fork>,
    /// On a conversation page: what the Edit, Regenerate and version forms need.
    pub actions: Option<Actions>,
    /// An edit of this message that could not be sent, as typed: its field opens with it.
    pub edit_draft: Option<String>,
}

/// A message's place among its versions, and its neighbours to switch to.
pub struct Fork {
    pub pos: usize,
    pub count: usize,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Fork {
    /// `m`'s place among `versions` (its siblings, oldest first, `m` among them); None when it is the only one.
    pub fn among(versions: &[&Message], m: &Message) -> Option<Fork> {
        let at = versions.iter().position(|v| v.id == m.id)?;
        (versions.len() > 1).then(|| Fork {
            pos: at + 1,
            count: versions.len(),
            prev: at.checked_sub(1).map(|i| versions[i].id.clone()),
            next: versions.get(at + 1).map(|v| v.id.clone()),
        })
    }
}

pub struct Actions {
    pub conversation_id: String,
    pub csrf: String,
}

/// The numbers under an answer.
pub struct MetaView {
    pub model: String,
    pub is_demo: bool,
    pub params: String,
    pub input_tokens: String,
    pub output_tokens: String,
    pub estimated: bool,
    pub cached_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub latency: String,
    pub ttft: String,
    pub tokens_per_sec: String,
    pub cost: String,
    pub finish_reason: String,
    pub status: String,
    pub error: Option<String>,
    pub dropped_params: String,
    pub context_dropped: i64,
    /// What the record says about its own data (e.g. characters removed from the output).
    pub notes: Option<String>,
}

/// A cost or price in the configured currency (see [`crate::money`]).
pub fn dollars(micros: i64) -> String {
    crate::money::text(micros)
}

fn duration(ms: Option<f64>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) if ms >= 1000.0 => format!("{:.2} s", ms / 1000.0),
        Some(ms) => format!("{ms:.0} ms"),
    }
}

impl MetaView {
    pub fn from_call(c: &CallRecord, registry: &Registry) -> MetaView {
        let model = registry.model(&c.model);
        let mut params = Vec::new();
        let mut f = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                params.push(format!("{name} {v}"));
            }
        };
        f("temperature", c.temperature.map(|v| v.to_string()));
        f("top_p", c.top_p.map(|v| v.to_string()));
        f("top_k", c.top_k.map(|v| v.to_string()));
        f("max_tokens", c.max_tokens.map(|v| v.to_string()));
        f("seed", c.seed.map(|v| v.to_string()));
        f("presence", c.presence_penalty.map(|v| v.to_string()));
        f("frequency", c.frequency_penalty.map(|v| v.to_string()));
        f("stop", c.stop.clone());
        let estimated = c.usage_source != "provider";
        let tokens = |n: Option<i64>| match n {
            Some(n) if estimated => format!("≈{n}"),
            Some(n) => n.to_string(),
            None => "–".into(),
        };
        MetaView {
            model: model
                .map(|m| m.display_name.clone())
                .unwrap_or_else(|| c.model.clone()),
            is_demo: model.is_some_and(|m| m.is_demo()),
            params: if params.is_empty() {
                "provider defaults".into()
            } else {
                params.join(" · ")
            },
            input_tokens: tokens(c.input_tokens),
            output_tokens: tokens(c.output_tokens),
            estimated,
            cached_tokens: c.cached_input_tokens.filter(|n| *n > 0),
            reasoning_tokens: c.reasoning_tokens.filter(|n| *n > 0),
            latency: duration(c.latency_ms),
            ttft: duration(c.ttft_ms),
            tokens_per_sec: c
                .tokens_per_sec
                .map(|t| format!("{t:.1} tok/s"))
                .unwrap_or_else(|| "–".into()),
            cost: cost_label(c),
            finish_reason: c.finish_reason.clone().unwrap_or_else(|| "–".into()),
            status: c.status.to_string(),
            error: c.error_message.clone(),
            dropped_params: c.params_dropped.replace(',', ", "),
            context_dropped: c.context_dropped,
            notes: c.notes.clone(),
        }
    }
}

impl MessageView {
    pub fn new(m: &Message, call: Option<&CallRecord>, registry: &Registry) -> MessageView {
        let is_user = m.role == "user";
        let trimmed = m.content.trim();
        let is_json = !is_user
            && (trimmed.starts_with('{') || trimmed.starts_with('['))
            && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok();
        MessageView {
            files: Vec::new(),
            is_json,
            id: m.id.clone(),
            is_user,
            text: m.content.clone(),
            html: if is_user {
                String::new()
            } else {
                markdown::render(&m.content)
            },
            reasoning: m.reasoning.clone(),
            status: m.status.clone(),
            meta: call.map(|c| MetaView::from_call(c, registry)),
            fork: None,
            actions: None,
            edit_draft: None,
        }
    }
}

/// One message block alone: what the stream sends when an answer is complete.
#[derive(Template)]
#[template(path = "_message.html")]
pub struct MessageBlock<'a> {
    pub m: &'a MessageView,
}

/// A call's cost as shown: the stored price applied, or why there is none — a model without prices has no
/// cost (not $0), and a call the provider did not bill (it failed before any output) has none either.
pub fn cost_label(c: &CallRecord) -> String {
    cost_text(
        c.cost_micros,
        [
            c.price_input_micros,
            c.price_cached_input_micros,
            c.price_output_micros,
        ],
        c.status == crate::domain::CallStatus::Pending,
    )
}

/// [`cost_label`] from the stored columns: the cost, the three prices the call was recorded with (input,
/// cached input, output), and whether it is still running.
pub fn cost_text(cost_micros: Option<i64>, prices: [i64; 3], pending: bool) -> String {
    match cost_micros {
        Some(micros) => dollars(micros),
        None if prices.iter().all(|p| *p == 0) => "no price configured".into(),
        None if pending => "–".into(),
        None => "not billed".into(),
    }
}
