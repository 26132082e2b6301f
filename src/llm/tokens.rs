//! Token estimates (cl100k BPE from tiktoken-rs, compiled in), used when a provider reports no usage and
//! to fit the context window. Always marked as estimates where they are stored.

use std::sync::LazyLock;
use tiktoken_rs::CoreBPE;

static BPE: LazyLock<Option<CoreBPE>> = LazyLock::new(|| tiktoken_rs::cl100k_base().ok());

/// Estimated tokens of a text.
pub fn estimate(text: &str) -> i64 {
    match BPE.as_ref() {
        Some(bpe) => bpe.encode_ordinary(text).len() as i64,
        // Fallback: about four characters per token for English text.
        None => (text.chars().count() as i64 + 3) / 4,
    }
}

/// Per-message framing overhead of chat formats (role markers), as OpenAI documents for its models.
pub const MESSAGE_OVERHEAD: i64 = 4;
/// Tokens that prime the answer.
pub const REPLY_PRIMING: i64 = 3;

#[cfg(test)]
mod tests {
    #[test]
    fn estimates_are_plausible() {
        assert_eq!(super::estimate(""), 0);
        let n = super::estimate("The quick brown fox jumps over the lazy dog.");
        assert!((8..=12).contains(&n), "{n}");
    }
}
