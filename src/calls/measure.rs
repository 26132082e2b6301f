//! Measuring one call: send it, stream its events to whoever listens, and note on a monotonic clock when it
//! was sent, when the provider first answered, when the first and last text came and when the finish chunk
//! came (the end-of-sequence token sends no text, but is billed and took time). Nothing here writes to the
//! database; [`super::outcome`] turns what was measured into the record.

use super::running::{StopReason, Ticket};
use crate::llm::{Event, EventStream, LlmError, ToolCallDelta, Usage};
use crate::util::now_ms;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What a listener (a chat page's SSE, an API response) receives.
#[derive(Debug)]
pub enum Update {
    Delta(Delta),
    /// The call is over: recorded, or (`saved` says) not.
    Done(Box<super::run::Ran>),
}

/// New output since the last update. A listener that reads slowly gets several pieces merged into one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Delta {
    pub content: String,
    /// Reasoning ("thinking") text, kept apart from the answer.
    pub reasoning: String,
    pub tool_calls: Vec<ToolCallDelta>,
    /// Log probabilities as the provider sent them, one entry per provider chunk.
    pub logprobs: Vec<serde_json::Value>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
            && self.reasoning.is_empty()
            && self.tool_calls.is_empty()
            && self.logprobs.is_empty()
    }

    fn take(&mut self) -> Delta {
        std::mem::take(self)
    }

    /// Adds a tool-call piece, joining it to the previous one when it continues the same call.
    fn push_tool_call(&mut self, piece: ToolCallDelta) {
        if let Some(last) = self.tool_calls.last_mut()
            && last.index == piece.index
            && piece.id.is_none()
            && piece.name.is_none()
        {
            last.arguments.push_str(&piece.arguments);
            return;
        }
        self.tool_calls.push(piece);
    }
}

/// A whole tool call of the answer, in the API's shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ToolFunction,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolFunction {
    pub name: String,
    pub arguments: String,
}

/// Assembles streamed pieces into whole calls, by index.
fn add_piece(calls: &mut Vec<(u32, ToolCall)>, piece: &ToolCallDelta) {
    let i = match calls.iter().position(|(index, _)| *index == piece.index) {
        Some(i) => i,
        None => {
            calls.push((
                piece.index,
                ToolCall {
                    kind: "function".into(),
                    ..Default::default()
                },
            ));
            calls.len() - 1
        }
    };
    let call = &mut calls[i].1;
    if let Some(id) = &piece.id {
        call.id.clone_from(id);
    }
    if let Some(kind) = &piece.kind {
        call.kind.clone_from(kind);
    }
    if let Some(name) = &piece.name {
        call.function.name.push_str(name);
    }
    call.function.arguments.push_str(&piece.arguments);
}

/// How the call ended.
#[derive(Debug)]
pub enum End {
    Finished,
    Failed(LlmError),
    /// The listener went away (a closed tab, Stop, a client that disconnected).
    Cancelled,
    /// The server is shutting down.
    Interrupted,
    /// The account was deactivated or deleted during the call.
    Stopped(StopReason),
}

/// When things happened: monotonic instants for durations, wall-clock milliseconds for the record.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub sent: Instant,
    pub sent_ms: i64,
    pub first_byte: Option<(Instant, i64)>,
    pub first_token: Option<(Instant, i64)>,
    pub last_token: Option<Instant>,
    /// When the finish reason arrived: the end of decoding.
    pub finish: Option<Instant>,
    pub ended: Instant,
    pub ended_ms: i64,
}

/// Everything measured about one call.
#[derive(Debug)]
pub struct Measured {
    pub end: End,
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub response_id: Option<String>,
    pub response_model: Option<String>,
    pub times: Times,
    /// U+0000 characters removed from the provider's output (no PostgreSQL text can hold one).
    pub nul_removed: usize,
    /// Output a slow listener had not taken yet when the call ended: sent to it before `Done`.
    pub unsent: Delta,
}

impl Measured {
    /// Whether the model produced anything (text, reasoning or a tool call): only then was output generated,
    /// and only then may anything the provider did not report be estimated and priced.
    pub fn generated(&self) -> bool {
        !self.text.is_empty() || !self.reasoning.is_empty() || !self.tool_calls.is_empty()
    }
}

/// What can stop a call besides its own end.
pub struct Stops<'a> {
    pub shutdown: &'a mut watch::Receiver<bool>,
    pub ticket: &'a mut Ticket,
    /// Whether a listener that goes away cancels the call; else the call runs on unheard to its end.
    pub cancel_when_unheard: bool,
}

/// Runs `stream` to its end. `listener` gets the output as it arrives; when it is dropped, the call is
/// cancelled if [`Stops::cancel_when_unheard`], else it runs on without one. The runner never waits for a listener: one that stops reading would otherwise leave stop,
/// shutdown and the provider's own timeouts unheard; what it has not taken is merged and sent when it has
/// room (and `Done` carries the whole answer anyway).
pub async fn measure(
    mut stream: EventStream,
    listener: &mpsc::Sender<Update>,
    stops: Stops<'_>,
) -> Measured {
    let sent = Instant::now();
    let sent_ms = now_ms();
    let mut m = Measured {
        end: End::Finished,
        text: String::new(),
        reasoning: String::new(),
        tool_calls: Vec::new(),
        usage: None,
        finish_reason: None,
        response_id: None,
        response_model: None,
        times: Times {
            sent,
            sent_ms,
            first_byte: None,
            first_token: None,
            last_token: None,
            finish: None,
            ended: sent,
            ended_ms: sent_ms,
        },
        nul_removed: 0,
        unsent: Delta::default(),
    };
    let mut calls: Vec<(u32, ToolCall)> = Vec::new();
    let mut unsent = Delta::default();
    let Stops {
        shutdown,
        ticket,
        cancel_when_unheard,
    } = stops;
    // None once the listener went away and the call runs on unheard.
    let mut listener = Some(listener);

    m.end = loop {
        let listener_gone = async move {
            match listener {
                Some(l) => l.closed().await,
                None => std::future::pending().await,
            }
        };
        let has_unsent = !unsent.is_empty();
        let room = async move {
            match listener {
                Some(l) if has_unsent => l.reserve().await.ok(),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => break End::Interrupted,
            reason = ticket.stopped() => break End::Stopped(reason),
            _ = listener_gone => {
                if cancel_when_unheard {
                    break End::Cancelled;
                }
                listener = None;
                unsent = Delta::default();
            }
            permit = room => {
                // None: the listener is gone, which the arm above reports on the next turn.
                if let Some(permit) = permit {
                    permit.send(Update::Delta(unsent.take()));
                }
            }
            event = stream.next() => match event {
                None => break End::Finished,
                Some(Err(e)) => break End::Failed(e),
                Some(Ok(Event::Opened)) => {
                    m.times.first_byte.get_or_insert_with(|| (Instant::now(), now_ms()));
                }
                Some(Ok(Event::Meta { response_id, model })) => {
                    m.response_id = response_id.or(m.response_id.take());
                    m.response_model = model.or(m.response_model.take());
                }
                Some(Ok(Event::Delta { mut content, reasoning: mut thinking })) => {
                    m.nul_removed += strip_nul(&mut content) + strip_nul(&mut thinking);
                    m.token_arrived();
                    m.text.push_str(&content);
                    m.reasoning.push_str(&thinking);
                    if listener.is_some() {
                        unsent.content.push_str(&content);
                        unsent.reasoning.push_str(&thinking);
                    }
                }
                Some(Ok(Event::ToolCall(mut piece))) => {
                    for field in [&mut piece.id, &mut piece.kind, &mut piece.name].into_iter().flatten() {
                        m.nul_removed += strip_nul(field);
                    }
                    m.nul_removed += strip_nul(&mut piece.arguments);
                    m.token_arrived();
                    add_piece(&mut calls, &piece);
                    if listener.is_some() {
                        unsent.push_tool_call(piece);
                    }
                }
                Some(Ok(Event::Logprobs(value))) => {
                    if listener.is_some() {
                        unsent.logprobs.push(value);
                    }
                }
                Some(Ok(Event::Usage(u))) => m.usage = Some(u),
                Some(Ok(Event::Finish(reason))) => {
                    m.times.finish = Some(Instant::now());
                    m.finish_reason = Some(reason);
                }
            }
        }
    };
    drop(stream); // cancels the upstream request if it is still open
    m.times.ended = Instant::now();
    m.times.ended_ms = now_ms();
    m.unsent = unsent;
    m.tool_calls = calls.into_iter().map(|(_, c)| c).collect();
    for field in [
        &mut m.finish_reason,
        &mut m.response_model,
        &mut m.response_id,
    ]
    .into_iter()
    .flatten()
    {
        m.nul_removed += strip_nul(field);
    }
    m
}

impl Measured {
    fn token_arrived(&mut self) {
        let now = Instant::now();
        self.times
            .first_token
            .get_or_insert_with(|| (now, now_ms()));
        self.times.last_token = Some(now);
    }
}

/// Removes U+0000 from `s` (no text column of PostgreSQL can store it); returns how many were removed.
pub fn strip_nul(s: &mut String) -> usize {
    let n = s.matches('\0').count();
    if n > 0 {
        s.retain(|c| c != '\0');
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_removed_and_counted() {
        let mut s = "a\0b\0\0c".to_string();
        assert_eq!(strip_nul(&mut s), 3);
        assert_eq!(s, "abc");
        assert_eq!(strip_nul(&mut s), 0);
    }

    #[test]
    fn tool_call_pieces_assemble_by_index() {
        let mut calls = Vec::new();
        let piece = |index, id: Option<&str>, name: Option<&str>, args: &str| ToolCallDelta {
            index,
            id: id.map(str::to_string),
            kind: id.map(|_| "function".to_string()),
            name: name.map(str::to_string),
            arguments: args.into(),
        };
        for p in [
            piece(0, Some("call_a"), Some("weather"), ""),
            piece(1, Some("call_b"), Some("time"), "{}"),
            piece(0, None, None, "{\"city\":"),
            piece(0, None, None, "\"Paris\"}"),
        ] {
            add_piece(&mut calls, &p);
        }
        let calls: Vec<ToolCall> = calls.into_iter().map(|(_, c)| c).collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "call_a");
        assert_eq!(calls[0].function.arguments, "{\"city\":\"Paris\"}");
        assert_eq!(calls[1].function.name, "time");
        // A slow listener gets continuation pieces merged.
        let mut d = Delta::default();
        d.push_tool_call(piece(0, Some("call_a"), Some("weather"), ""));
        d.push_tool_call(piece(0, None, None, "{\"a\""));
        d.push_tool_call(piece(0, None, None, ":1}"));
        assert_eq!(d.tool_calls.len(), 1);
        assert_eq!(d.tool_calls[0].arguments, "{\"a\":1}");
    }
}
