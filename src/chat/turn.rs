//! Starting a model call in a conversation: validate, build the context, and store the user's message, the
//! answer placeholder and the pending call record in one transaction, before the provider is called.

use super::context::{self, Turn as HistoryTurn};
use crate::calls::{AnswerIn, CallService, Started};
use crate::db::calls::CallRecord;
use crate::db::conversations::{self, Conversation};
use crate::db::files::{self, CallFile, FileText};
use crate::db::group::{
    Activity, CallStart, NewConversation, NewMessage, Remembered, TurnStart, Write,
};
use crate::db::messages::{self, Message};
use crate::domain::{Params, Source};
use crate::llm::registry::Model;
use crate::llm::{CallRequest, tokens};
use crate::util::{new_id, now_ms};

/// Longest message a person can send (characters).
pub const MAX_MESSAGE_CHARS: usize = 200_000;

/// A started turn: the call, ready to run, and the messages it belongs to.
pub struct Turn {
    pub conversation_id: String,
    /// The conversation's title (a new one's, from its first message).
    pub title: String,
    pub user_message_id: String,
    pub answer_id: String,
    pub started: Started,
}

#[derive(Debug)]
pub enum TurnError {
    NotFound,
    Invalid(String),
    /// The person runs as many calls as allowed at once, or reached a rate limit: try again after a while.
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for TurnError {
    fn from(e: E) -> Self {
        TurnError::Internal(e.into())
    }
}

/// A new message (with `conversation_id` None for a new conversation).
pub struct Ask<'a> {
    pub user_id: &'a str,
    pub conversation_id: Option<&'a str>,
    pub content: &'a str,
    pub model: &'a Model,
    pub params: Params,
    pub stream: bool,
    pub source: Source,
    /// Most files one message may carry.
    pub max_files: u32,
    /// Ids of uploaded files to send with the message.
    pub files: &'a [String],
    /// The form's parameters as JSON, to offer next time with the model (stored with the call's start).
    pub remember: Option<String>,
}

/// A conversation title from its first message: the first line, at most 80 characters.
pub fn title_from(content: &str) -> String {
    // A code fence's marker line says nothing: the first line of text does.
    let line = content
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("```") && !l.starts_with("~~~"))
        .unwrap_or("");
    let mut title: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        title.push('…');
    }
    if title.is_empty() {
        "Untitled".into()
    } else {
        title
    }
}

/// The typed text as sent (trailing blanks cut), or why it cannot be.
fn checked(content: &str) -> Result<&str, TurnError> {
    let content = content.trim_end();
    if content.trim().is_empty() {
        return Err(TurnError::Invalid("Write a message first.".into()));
    }
    // PostgreSQL text cannot hold U+0000 (forms are refused earlier, in `web::nul`; this covers other callers).
    if content.contains('\0') {
        return Err(TurnError::Invalid(
            "Messages cannot contain the NUL character (U+0000).".into(),
        ));
    }
    if content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(TurnError::Invalid(format!(
            "Messages are limited to {MAX_MESSAGE_CHARS} characters."
        )));
    }
    Ok(content)
}

pub async fn ask(calls: &CallService, ask: Ask<'_>) -> Result<Turn, TurnError> {
    let content = checked(ask.content)?;
    let (conversation, branch) = match ask.conversation_id {
        Some(id) => {
            let c = conversations::get_owned(calls.db(), id, ask.user_id)
                .await?
                .ok_or(TurnError::NotFound)?;
            let all = messages::all_in(calls.db(), &c.id).await?;
            let branch = messages::branch(&all, c.head_id.as_deref());
            (Some(c), branch)
        }
        None => (None, Vec::new()),
    };
    let cap = ask.max_files;
    if ask.files.len() > cap as usize {
        return Err(TurnError::Invalid(crate::files::too_many_files(cap)));
    }
    let attachments = if ask.files.is_empty() {
        Vec::new()
    } else {
        let found = files::pending_with_text(calls.db(), ask.files, ask.user_id).await?;
        if found.len() != ask.files.len() {
            return Err(TurnError::Invalid(
                "An attached file is not available: it may have been sent already or removed. Attach it again."
                    .into(),
            ));
        }
        found
    };
    let user_message_id = new_id();
    let tokens = tokens::estimate_async(content).await;
    let user_msg = Message {
        id: user_message_id.clone(),
        conversation_id: String::new(),
        parent_id: branch.last().map(|m| m.id.clone()),
        role: "user".into(),
        content: content.to_string(),
        model_content: None,
        reasoning: String::new(),
        status: "ok".into(),
        model_id: None,
        call_id: None,
        token_estimate: tokens,
        created_ms: now_ms(),
    };
    start(calls, ask, conversation, branch, user_msg, attachments).await
}

/// A new answer to a question already asked (a sibling branch of its answers): to the question behind
/// `answer_id`, or behind the conversation's latest answer when None. The old answer and its record stay.
pub async fn regenerate(
    calls: &CallService,
    user_id: &str,
    conversation_id: &str,
    answer_id: Option<&str>,
    model: &Model,
    params: Params,
    stream: bool,
) -> Result<Turn, TurnError> {
    tokens::ready().await;
    let c = conversations::get_owned(calls.db(), conversation_id, user_id)
        .await?
        .ok_or(TurnError::NotFound)?;
    let all = messages::all_in(calls.db(), &c.id).await?;
    let (history, question) = match answer_id {
        Some(id) => {
            let answer = all
                .iter()
                .find(|m| m.id == id && m.role == "assistant")
                .ok_or(TurnError::NotFound)?;
            let question = answer
                .parent_id
                .as_deref()
                .and_then(|q| all.iter().find(|m| m.id == q && m.role == "user"))
                .ok_or_else(|| {
                    TurnError::Invalid("This answer has no question to answer again.".into())
                })?
                .clone();
            (history_before(&all, &question), question)
        }
        None => {
            let mut branch = messages::branch(&all, c.head_id.as_deref());
            while branch.last().is_some_and(|m| m.role != "user") {
                branch.pop();
            }
            let question = branch
                .pop()
                .ok_or_else(|| TurnError::Invalid("There is no message to answer again.".into()))?;
            (branch, question)
        }
    };
    let ask = Ask {
        user_id,
        conversation_id: Some(conversation_id),
        content: "",
        model,
        params,
        stream,
        source: Source::Ui,
        max_files: 0,
        files: &[],
        remember: None,
    };
    start_existing(calls, ask, c, history, question).await
}

/// The branch that leads to `m`, without it.
fn history_before(all: &[Message], m: &Message) -> Vec<Message> {
    match m.parent_id.as_deref() {
        Some(parent) => messages::branch(all, Some(parent)),
        None => Vec::new(),
    }
}

/// An earlier message of the person's, edited and asked again: a new question beside the old one (a sibling
/// branch) that carries the old one's attachments; the old question, its answers and their records stay.
pub async fn edit(calls: &CallService, ask: Ask<'_>, message_id: &str) -> Result<Turn, TurnError> {
    let content = checked(ask.content)?;
    let conversation_id = ask.conversation_id.ok_or(TurnError::NotFound)?;
    let c = conversations::get_owned(calls.db(), conversation_id, ask.user_id)
        .await?
        .ok_or(TurnError::NotFound)?;
    let all = messages::all_in(calls.db(), &c.id).await?;
    let original = all
        .iter()
        .find(|m| m.id == message_id && m.role == "user")
        .ok_or(TurnError::NotFound)?
        .clone();
    let history = history_before(&all, &original);
    // The files went in front of the typed text (see `compose`): the same files, then the new text.
    let model_content = original.model_content.as_deref().map(|mc| {
        let files = mc.strip_suffix(original.content.as_str()).unwrap_or(mc);
        format!("{files}{content}")
    });
    let token_estimate = tokens::estimate_async(model_content.as_deref().unwrap_or(content)).await;
    let question = Message {
        id: new_id(),
        conversation_id: c.id.clone(),
        parent_id: original.parent_id.clone(),
        role: "user".into(),
        content: content.to_string(),
        model_content,
        reasoning: String::new(),
        status: "ok".into(),
        model_id: None,
        call_id: None,
        token_estimate,
        created_ms: now_ms(),
    };
    let sent = files::sent_with(calls.db(), &original.id).await?;
    // The files stay the original question's (they are sent again, not moved).
    let how = Insert {
        question: true,
        files_are_new: false,
    };
    begin(calls, ask, Some(c), history, question, how, sent).await
}

/// Puts attachments in front of the typed text, each inside a delimiter that names it, cutting what does not
/// fit into `budget` tokens. Returns the model's text and, per file, the tokens sent.
pub fn compose(text: &str, attachments: &[FileText], budget: i64) -> (String, Vec<CallFile>) {
    let mut remaining = budget.max(0);
    let mut out = String::new();
    let mut sent = Vec::new();
    for a in attachments {
        let total = a.file.tokens;
        let take = total.min(remaining);
        remaining -= take;
        let body = if take < total {
            tokens::truncate(&a.text, take)
        } else {
            a.text.clone()
        };
        out.push_str(&format!("<file name=\"{}\">\n{}", a.file.name, body));
        if let Some(kept) = a.file.text_cut_bytes {
            // The model should know it has a beginning only, as the person sees on the chip.
            out.push_str(&format!(
                "\n[… this file holds more text: only its first {kept} bytes were read]"
            ));
        }
        if take < total {
            out.push_str(&format!(
                "\n[… the rest of this file was cut to fit the context window: {take} of {total} tokens sent]"
            ));
        }
        out.push_str("\n</file>\n\n");
        sent.push(CallFile {
            call_id: String::new(),
            file_id: a.file.id.clone(),
            name: a.file.name.clone(),
            tokens_sent: take,
            tokens_total: total,
        });
    }
    out.push_str(text);
    (out, sent)
}

/// A new call on a question that is already stored (regenerate): its files were sent with it before.
async fn start_existing(
    calls: &CallService,
    ask: Ask<'_>,
    conversation: Conversation,
    history: Vec<Message>,
    question: Message,
) -> Result<Turn, TurnError> {
    let sent = files::sent_with(calls.db(), &question.id).await?;
    let how = Insert {
        question: false,
        files_are_new: false,
    };
    begin(calls, ask, Some(conversation), history, question, how, sent).await
}

/// A new question, with its attachments composed into what the model is given.
async fn start(
    calls: &CallService,
    ask: Ask<'_>,
    conversation: Option<Conversation>,
    history: Vec<Message>,
    mut question: Message,
    attachments: Vec<FileText>,
) -> Result<Turn, TurnError> {
    let mut sent = Vec::new();
    if !attachments.is_empty() {
        let reserved = reserved_for_answer(ask.model, &ask.params);
        let system = ask
            .params
            .system_prompt
            .as_deref()
            .map_or(0, tokens::estimate);
        let budget = ask.model.context_window
            - reserved
            - system
            - question.token_estimate
            - 4 * tokens::MESSAGE_OVERHEAD
            - tokens::REPLY_PRIMING
            // The delimiter and a possible cut notice around each file.
            - 48 * attachments.len() as i64;
        // Files can be megabytes of text: cutting and counting them is CPU work for a blocking thread.
        let text = question.content.clone();
        let (model_content, per_file, estimate) = tokio::task::spawn_blocking(move || {
            let (model_content, per_file) = compose(&text, &attachments, budget);
            let estimate = tokens::estimate(&model_content);
            (model_content, per_file, estimate)
        })
        .await?;
        question.token_estimate = estimate;
        question.model_content = Some(model_content);
        sent = per_file;
    }
    let how = Insert {
        question: true,
        files_are_new: true,
    };
    begin(calls, ask, conversation, history, question, how, sent).await
}

/// What a turn writes besides the answer: the question (unless it is stored already), and whether its files
/// are new with it (uploaded for it, now attached to it) or were attached to an earlier question.
struct Insert {
    question: bool,
    files_are_new: bool,
}

fn reserved_for_answer(model: &Model, params: &Params) -> i64 {
    params
        .max_tokens
        .unwrap_or_else(|| model.max_output_tokens.min(1024))
}

async fn begin(
    calls: &CallService,
    ask: Ask<'_>,
    conversation: Option<Conversation>,
    history: Vec<Message>,
    question: Message,
    insert: Insert,
    sent_files: Vec<CallFile>,
) -> Result<Turn, TurnError> {
    // Taken before anything is written, so a refused call leaves no trace; freed however the call ends.
    let mut ticket = calls.enter(ask.user_id).map_err(|b| TurnError::Busy {
        message: b.message(),
        retry_after_secs: 5,
    })?;
    let model = ask.model;
    let params = ask.params;
    let reserved = reserved_for_answer(model, &params);
    let system = params
        .system_prompt
        .as_deref()
        .map(|s| (s, tokens::estimate(s)));
    let turns: Vec<HistoryTurn> = history
        .iter()
        .chain(std::iter::once(&question))
        .map(|m| HistoryTurn {
            role: &m.role,
            content: m.model_content.as_deref().unwrap_or(&m.content),
            tokens: m.token_estimate,
        })
        .collect();
    let fitted = context::fit(system, &turns, model.context_window, reserved).map_err(|e| {
        TurnError::Invalid(format!(
            "This message needs about {} tokens, but {} allows {} tokens of context after reserving {} for \
             the answer. Shorten it, lower max tokens, or pick a model with a larger window.",
            e.needed, model.display_name, e.budget, reserved
        ))
    })?;
    // Counted against the rate limits before anything is written: the prompt and the room for the answer.
    calls
        .admit(ask.user_id, None, fitted.estimated_tokens + reserved)
        .await
        .map_err(|l| TurnError::Busy {
            message: l.message,
            retry_after_secs: l.retry_after_secs,
        })?;
    let provider = calls
        .llm()
        .provider(&model.provider)
        .cloned()
        .ok_or_else(|| TurnError::Invalid("This model's provider is not available.".into()))?;
    // The budgets' worst case: the prompt, and the whole room for the answer at the output price. Reserved
    // last, after everything that can refuse the call: from here on the call is written, or its holds released.
    let holds = calls
        .budgets()
        .reserve(
            calls.db(),
            &crate::calls::budgets::WorstCase {
                user_id: ask.user_id,
                api_key_id: None,
                prices: model.prices_at(now_ms()),
                input_tokens: fitted.estimated_tokens,
                // Without max_tokens the provider may write up to the model's output limit.
                output_tokens: params.max_tokens.unwrap_or(model.max_output_tokens),
            },
        )
        .await?
        .map_err(|o| TurnError::Busy {
            message: o.message,
            retry_after_secs: o.retry_after_secs,
        })?;
    let prepared = provider.prepare(&CallRequest {
        upstream_model: model.upstream.clone(),
        messages: fitted.messages,
        params: params.clone(),
        stream: ask.stream,
        passthrough: Default::default(),
    });
    let now = now_ms();
    let conversation_id = conversation
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_else(new_id);
    let answer_id = new_id();
    let call = CallRecord {
        conversation_id: Some(conversation_id.clone()),
        request_message_id: Some(question.id.clone()),
        response_message_id: Some(answer_id.clone()),
        context_dropped: fitted.dropped as i64,
        sent_ms: now,
        ..calls.pending_record(ask.user_id, ask.source, model, &params, &prepared)
    };
    calls
        .budgets()
        .hold_until(calls, &mut ticket, &call.id, holds);

    let mut messages = Vec::with_capacity(2);
    if insert.question {
        messages.push(NewMessage {
            id: question.id.clone(),
            conversation_id: conversation_id.clone(),
            user_id: ask.user_id.to_string(),
            parent_id: question.parent_id.clone(),
            role: "user".into(),
            content: question.content.clone(),
            model_content: question.model_content.clone(),
            status: "ok".into(),
            model_id: None,
            call_id: None,
            token_estimate: question.token_estimate,
            created_ms: now,
        });
    }
    messages.push(NewMessage {
        id: answer_id.clone(),
        conversation_id: conversation_id.clone(),
        user_id: ask.user_id.to_string(),
        parent_id: Some(question.id.clone()),
        role: "assistant".into(),
        content: String::new(),
        model_content: None,
        status: "streaming".into(),
        model_id: Some(model.id.clone()),
        call_id: Some(call.id.clone()),
        token_estimate: 0,
        created_ms: now + 1,
    });
    let turn = TurnStart {
        conversation: conversation.is_none().then(|| NewConversation {
            id: conversation_id.clone(),
            user_id: ask.user_id.to_string(),
            title: title_from(&question.content),
            created_ms: now,
            model_id: ask.remember.as_ref().map(|_| model.id.clone()),
            params_json: ask.remember.clone(),
        }),
        activity: Activity {
            conversation_id: conversation_id.clone(),
            head_id: Some(answer_id.clone()),
            at_ms: now,
            added_messages: messages.len() as i64,
            added_tokens: 0,
            model: Some(model.id.clone()),
        },
        messages,
        files: sent_files
            .into_iter()
            .map(|f| CallFile {
                call_id: call.id.clone(),
                ..f
            })
            .collect(),
        attach_files_to: (insert.question && insert.files_are_new).then(|| question.id.clone()),
        remember: ask.remember.map(|params_json| Remembered {
            user_id: ask.user_id.to_string(),
            // Written only when the conversation's own choice changes.
            conversation_id: conversation
                .as_ref()
                .filter(|c| {
                    c.model_id.as_deref() != Some(model.id.as_str())
                        || c.params_json.as_deref() != Some(params_json.as_str())
                })
                .map(|c| c.id.clone()),
            model_id: model.id.clone(),
            params_json,
            at_ms: now,
        }),
    };
    let start = CallStart {
        call: call.clone(),
        turn: Some(turn),
    };
    // If this request is dropped once the start is written but before the runner owns the call, the ticket
    // goes with it, and the heartbeat interrupts the pending call it leaves (see `Running::has_call`).
    ticket.set_call(&call.id);
    if let Err(e) = calls
        .db()
        .group()
        .commit(Write::Start(Box::new(start)))
        .await
    {
        // Never started: what it reserved goes back.
        calls
            .budgets()
            .settle(calls.db(), &call.id, Some(0), 0)
            .await;
        return Err(e.into());
    }

    Ok(Turn {
        title: conversation
            .as_ref()
            .map(|c| c.title.clone())
            .unwrap_or_else(|| title_from(&question.content)),
        conversation_id: conversation_id.clone(),
        user_message_id: question.id,
        answer_id: answer_id.clone(),
        started: Started {
            call,
            model: model.clone(),
            prepared,
            input_estimate: fitted.estimated_tokens,
            ticket,
            answer: Some(AnswerIn {
                conversation_id,
                answer_id,
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::title_from;

    #[test]
    fn titles() {
        assert_eq!(title_from("\n  Hello world \nmore"), "Hello world");
        assert_eq!(title_from("   "), "Untitled");
        assert_eq!(title_from("```python\ndef f(): pass\n```"), "def f(): pass");
        assert_eq!(title_from(&"x".repeat(100)).chars().count(), 81);
    }
}
