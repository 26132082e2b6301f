//! Token estimates (cl100k BPE from tiktoken-rs, compiled in), used when a provider reports no usage and
//! to fit the context window. Always marked as estimates where they are stored.

use std::sync::OnceLock;
use tiktoken_rs::CoreBPE;

/// Built on first use, not at start-up: it holds several MB that an idle server does not need.
static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();

fn bpe() -> Option<&'static CoreBPE> {
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// Builds the tokenizer, if it is not built yet, on a blocking thread. Building takes a few hundred ms of
/// CPU, which on an async worker would hold up every request scheduled there. (On two cores it still competes
/// for CPU: a cold server's first streamed calls saw a TTFT p99 of 60–90 ms with or without this.) Call before
/// [`estimate`] on an async path.
pub async fn ready() {
    if BPE.get().is_none() {
        let _ = tokio::task::spawn_blocking(|| {
            bpe();
        })
        .await;
    }
}

/// Texts longer than this are estimated on a blocking thread: a BPE pass over a long paste takes tens of ms.
const LONG: usize = 16 * 1024;

/// [`estimate`] for an async path: a long text is counted on a blocking thread.
pub async fn estimate_async(text: &str) -> i64 {
    ready().await;
    if text.len() <= LONG {
        return estimate(text);
    }
    let owned = text.to_string();
    match tokio::task::spawn_blocking(move || estimate(&owned)).await {
        Ok(n) => n,
        // The count panicked (it should not): the plain character rule, not a second try on this thread.
        Err(_) => by_characters(text),
    }
}

/// Estimated tokens of a text.
pub fn estimate(text: &str) -> i64 {
    match bpe() {
        Some(bpe) => bpe.encode_ordinary(text).len() as i64,
        None => by_characters(text),
    }
}

/// The fallback rule: about four characters per token for English text.
fn by_characters(text: &str) -> i64 {
    (text.chars().count() as i64 + 3) / 4
}

/// The first `max` tokens of `text` (the whole text when it is shorter).
pub fn truncate(text: &str, max: i64) -> String {
    let max = max.max(0) as usize;
    match bpe() {
        Some(bpe) => {
            let tokens = bpe.encode_ordinary(text);
            if tokens.len() <= max {
                return text.to_string();
            }
            // A cut can split a multi-byte character; back off until the prefix decodes.
            let mut n = max;
            loop {
                if let Ok(s) = bpe.decode(&tokens[..n]) {
                    return s;
                }
                if n == 0 {
                    return String::new();
                }
                n -= 1;
            }
        }
        None => text.chars().take(max * 4).collect(),
    }
}

/// Per-message framing overhead of chat formats (role markers), as OpenAI documents for its models.
pub const MESSAGE_OVERHEAD: i64 = 4;
/// Tokens that prime the answer.
pub const REPLY_PRIMING: i64 = 3;

#[cfg(test)]
mod tests {
    #[test]
    fn truncation_keeps_the_first_tokens() {
        let text = "one two three four five six";
        assert_eq!(super::truncate(text, 3), "one two three");
        assert_eq!(super::truncate(text, 100), text);
        let cut = super::truncate("héllo wörld ünïcödé", 2);
        assert!(
            !cut.is_empty() && "héllo wörld ünïcödé".starts_with(&cut),
            "{cut}"
        );
    }

    #[test]
    fn estimates_are_plausible() {
        assert_eq!(super::estimate(""), 0);
        let n = super::estimate("The quick brown fox jumps over the lazy dog.");
        assert!((8..=12).contains(&n), "{n}");
    }
}
