//! Fitting a conversation into a model's context window: keep the newest turns that fit, drop the oldest.

use crate::llm::ChatMessage;
use crate::llm::tokens::{MESSAGE_OVERHEAD, REPLY_PRIMING};

/// A message of the history with its (stored) token estimate.
pub struct Turn<'a> {
    pub role: &'a str,
    pub content: &'a str,
    pub tokens: i64,
}

/// The messages to send, and how many earlier messages were left out.
#[derive(Debug, PartialEq)]
pub struct Fitted {
    pub messages: Vec<ChatMessage>,
    pub dropped: usize,
    pub estimated_tokens: i64,
}

#[derive(Debug, PartialEq)]
pub struct TooLong {
    pub needed: i64,
    pub budget: i64,
}

/// `history` is oldest first and ends with the new user message, which is always kept. The budget is the
/// context window minus the tokens reserved for the answer (`max_tokens`).
pub fn fit(
    system: Option<(&str, i64)>,
    history: &[Turn<'_>],
    context_window: i64,
    reserved_for_answer: i64,
) -> Result<Fitted, TooLong> {
    let budget = context_window - reserved_for_answer - REPLY_PRIMING;
    let mut used = system.map(|(_, t)| t + MESSAGE_OVERHEAD).unwrap_or(0);
    let mut kept = 0;
    for (i, turn) in history.iter().enumerate().rev() {
        let cost = turn.tokens + MESSAGE_OVERHEAD;
        if used + cost > budget {
            if i == history.len() - 1 {
                return Err(TooLong {
                    needed: used + cost,
                    budget,
                });
            }
            break;
        }
        used += cost;
        kept += 1;
    }
    let mut start = history.len() - kept;
    // Never begin with an assistant message cut from its question.
    while start < history.len() - 1 && history[start].role == "assistant" {
        used -= history[start].tokens + MESSAGE_OVERHEAD;
        start += 1;
    }
    let mut messages = Vec::with_capacity(history.len() - start + 1);
    if let Some((text, _)) = system {
        messages.push(ChatMessage::new("system", text));
    }
    messages.extend(
        history[start..]
            .iter()
            .map(|t| ChatMessage::new(t.role, t.content)),
    );
    Ok(Fitted {
        messages,
        dropped: start,
        estimated_tokens: used + REPLY_PRIMING,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns() -> Vec<Turn<'static>> {
        vec![
            Turn {
                role: "user",
                content: "q1",
                tokens: 100,
            },
            Turn {
                role: "assistant",
                content: "a1",
                tokens: 100,
            },
            Turn {
                role: "user",
                content: "q2",
                tokens: 100,
            },
            Turn {
                role: "assistant",
                content: "a2",
                tokens: 100,
            },
            Turn {
                role: "user",
                content: "q3",
                tokens: 100,
            },
        ]
    }

    #[test]
    fn everything_fits_in_a_large_window() {
        let f = fit(Some(("sys", 10)), &turns(), 10_000, 1000).unwrap();
        assert_eq!(f.dropped, 0);
        assert_eq!(f.messages.len(), 6);
        assert_eq!(f.messages[0].role, "system");
    }

    #[test]
    fn oldest_turns_are_dropped_and_no_orphan_answer_leads() {
        // Budget 1000 - 600 - 3 = 397: fits three messages (312), not four (416).
        let f = fit(None, &turns(), 1000, 600).unwrap();
        assert_eq!(f.dropped, 2);
        assert_eq!(
            f.messages
                .iter()
                .map(|m| m.content.as_str().unwrap_or(""))
                .collect::<Vec<_>>(),
            vec!["q2", "a2", "q3"]
        );
        // Budget for two messages would start with an answer: it is dropped too.
        let f = fit(None, &turns(), 1000, 700).unwrap();
        assert_eq!(
            f.messages
                .iter()
                .map(|m| m.content.as_str().unwrap_or(""))
                .collect::<Vec<_>>(),
            vec!["q3"]
        );
        assert_eq!(f.dropped, 4);
    }

    #[test]
    fn a_message_too_long_by_itself_is_an_error() {
        let t = [Turn {
            role: "user",
            content: "x",
            tokens: 5000,
        }];
        let e = fit(None, &t, 4096, 1000).unwrap_err();
        assert_eq!(e.budget, 4096 - 1000 - 3);
    }
}
