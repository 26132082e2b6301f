//! Token estimates (cl100k BPE from tiktoken-rs, compiled in), used when a provider reports no usage and
//! to fit the context window. Always marked as estimates where they are stored.
//!
//! The text is never handed to the BPE whole. tiktoken splits text into "words" with a regex and merges the
//! bytes of each word; a word of millions of letters (a hostile upload) costs seconds and gigabytes. So the text
//! is first cut into [`segments`]: at most [`SEGMENT`] bytes, cut just before a whitespace that starts a new
//! word (where tiktoken's own pre-tokenizer splits too, so ordinary text counts exactly as before), and any run
//! of one character class (letters, whitespace, punctuation) longer than [`MAX_RUN`] bytes is cut into pieces of
//! that length (such a run is not language; its count is off by at most a token per cut). Every BPE call then
//! sees a bounded input, and the cost is linear in the text.

use crate::files::cancel::Cancel;
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

/// Soft size of a segment handed to the BPE at once.
pub const SEGMENT: usize = 8 * 1024;
/// Longest run of one character class given to the BPE as one piece. tiktoken merges a piece under 100 bytes
/// with its simple quadratic loop, which at this size is a few hundred operations.
pub const MAX_RUN: usize = 48;

/// Counts of short pieces remembered per [`estimate_until`] call.
const SHORT_CACHE: usize = 4096;

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
    estimate_until(text, &Cancel::never()).unwrap_or_else(|| by_characters(text))
}

/// [`estimate`] that gives up (returns `None`) once `cancel` is set; it is checked between segments.
pub fn estimate_until(text: &str, cancel: &Cancel) -> Option<i64> {
    let Some(bpe) = bpe() else {
        return Some(by_characters(text));
    };
    // Pieces of a cut run tend to repeat (`aaaa…`, `====…`); their counts are remembered, a bounded number.
    let mut short: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    let mut n = 0i64;
    for seg in segments(text) {
        if cancel.is_cancelled() {
            return None;
        }
        if seg.len() > MAX_RUN + 4 {
            n += encoded_len(bpe, seg);
            continue;
        }
        let count = match short.get(seg) {
            Some(&c) => c,
            None => {
                let c = encoded_len(bpe, seg);
                if short.len() < SHORT_CACHE {
                    short.insert(seg, c);
                }
                c
            }
        };
        n += count;
    }
    Some(n)
}

/// One BPE pass. Tests count the calls and their input bytes: the work bound is asserted on those, not on
/// wall-clock time (which depends on the machine and its load).
fn encoded_len(bpe: &CoreBPE, seg: &str) -> i64 {
    #[cfg(test)]
    tests::BPE_WORK.with(|w| {
        let (calls, bytes, longest) = w.get();
        w.set((calls + 1, bytes + seg.len(), longest.max(seg.len())));
    });
    bpe.encode_ordinary(seg).len() as i64
}

/// The fallback rule: about four characters per token for English text.
fn by_characters(text: &str) -> i64 {
    (text.chars().count() as i64 + 3) / 4
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Space,
    Letter,
    Digit,
    Other,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else {
        Class::Other
    }
}

/// Consecutive pieces of `text` (together exactly `text`), each small enough for a cheap BPE pass; see the
/// module documentation.
pub fn segments(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = next_cut(rest);
        let (seg, tail) = rest.split_at(cut);
        rest = tail;
        Some(seg)
    })
}

/// Where the first segment of `text` ends (a char boundary > 0, or the end).
fn next_cut(text: &str) -> usize {
    let mut run_class = None;
    let mut run_start = 0;
    let mut prev: Option<(usize, Class)> = None;
    for (i, c) in text.char_indices() {
        let k = class(c);
        if run_class != Some(k) {
            // A word starts after whitespace: cut before that whitespace, where tiktoken splits too.
            if let Some((p, Class::Space)) = prev
                && p >= SEGMENT
            {
                return p;
            }
            // Text without whitespace (`a.b.c.…`): cut where the class changes, also a split point.
            if i >= 4 * SEGMENT {
                return i;
            }
            run_class = Some(k);
            run_start = i;
        } else if i - run_start >= MAX_RUN {
            // MAX_RUN is a multiple of three, so a run of digits (split in threes by the pre-tokenizer) is
            // cut where it would split anyway.
            return i;
        }
        prev = Some((i, k));
    }
    text.len()
}

/// The first `max` tokens of `text` (the whole text when it is shorter).
pub fn truncate(text: &str, max: i64) -> String {
    let max = max.max(0) as usize;
    let Some(bpe) = bpe() else {
        return text.chars().take(max * 4).collect();
    };
    let mut taken = 0usize;
    let mut offset = 0usize;
    for seg in segments(text) {
        let tokens = bpe.encode_ordinary(seg);
        if taken + tokens.len() <= max {
            taken += tokens.len();
            offset += seg.len();
            continue;
        }
        // A cut can split a multi-byte character; back off until the prefix decodes.
        let mut n = max - taken;
        let tail = loop {
            if let Ok(s) = bpe.decode(&tokens[..n]) {
                break s;
            }
            if n == 0 {
                break String::new();
            }
            n -= 1;
        };
        let mut out = String::with_capacity(offset + tail.len());
        out.push_str(&text[..offset]);
        out.push_str(&tail);
        return out;
    }
    text.to_string()
}

/// Per-message framing overhead of chat formats (role markers), as OpenAI documents for its models.
pub const MESSAGE_OVERHEAD: i64 = 4;
/// Tokens that prime the answer.
pub const REPLY_PRIMING: i64 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// BPE calls on this thread: (calls, input bytes, longest input).
        pub(super) static BPE_WORK: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
    }

    /// Runs `f` and returns its result with the BPE work it did on this thread.
    fn with_work<T>(f: impl FnOnce() -> T) -> (T, (usize, usize, usize)) {
        BPE_WORK.with(|w| w.set((0, 0, 0)));
        let out = f();
        (out, BPE_WORK.with(|w| w.get()))
    }

    #[test]
    fn truncation_keeps_the_first_tokens() {
        let text = "one two three four five six";
        assert_eq!(truncate(text, 3), "one two three");
        assert_eq!(truncate(text, 100), text);
        let cut = truncate("héllo wörld ünïcödé", 2);
        assert!(
            !cut.is_empty() && "héllo wörld ünïcödé".starts_with(&cut),
            "{cut}"
        );
        // Across segments: the prefix of a long text is a prefix with the asked number of tokens.
        let long = "lorem ipsum dolor sit amet ".repeat(2000);
        let cut = truncate(&long, 5000);
        assert!(long.starts_with(&cut));
        assert_eq!(estimate(&cut), 5000);
    }

    #[test]
    fn estimates_are_plausible() {
        assert_eq!(estimate(""), 0);
        let n = estimate("The quick brown fox jumps over the lazy dog.");
        assert!((8..=12).contains(&n), "{n}");
    }

    #[test]
    fn segments_cover_the_text_and_ordinary_text_counts_as_one_pass() {
        let bpe = bpe().unwrap();
        let prose = "It was the best of times, it was the worst of times;\n\tit was the age of wisdom 1234567, \
                     l'âge de la folie — 愚かさの時代.  Spaces   and\r\nlines.\n\n"
            .repeat(400);
        assert!(prose.len() > 4 * SEGMENT);
        assert_eq!(segments(&prose).collect::<String>(), prose);
        assert!(segments(&prose).count() > 3);
        assert_eq!(
            estimate(&prose),
            bpe.encode_ordinary(&prose).len() as i64,
            "cutting at word starts changes nothing for ordinary text"
        );
    }

    #[test]
    fn a_huge_run_of_one_letter_counts_in_linear_time() {
        // 30 MB of one letter took tiktoken 25–30 s and 1.6 GB as a single word. The cost of tiktoken's merge
        // loop grows with the square of its input, so the work is bounded by what is handed to it: every BPE
        // input is at most MAX_RUN + 4 bytes here, and the inputs together are at most the text (each byte is
        // encoded at most once). Counted, not timed: a timed test flakes on a loaded machine.
        let text = "a".repeat(30 * 1024 * 1024);
        assert!(segments(&text).all(|s| s.len() <= MAX_RUN));
        bpe();
        let (n, (calls, bytes, longest)) = with_work(|| estimate(&text));
        // The pieces repeat: remembered, so the BPE runs only for the distinct ones.
        assert!(calls <= 2, "{calls} BPE calls");
        assert!(
            bytes <= 2 * MAX_RUN && longest <= MAX_RUN,
            "{bytes} {longest}"
        );
        assert!(n > (text.len() / MAX_RUN) as i64, "{n}");
        assert!(n < (text.len() / 2) as i64, "{n}");
        // Without repetition (no piece twice), the work is still linear: 4 MB of pseudo-random letters.
        let mut x = 1u32;
        let random: String = (0..4 * 1024 * 1024)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b'a' + ((x >> 16) % 26) as u8)
            })
            .collect();
        let (m, (calls, bytes, longest)) = with_work(|| estimate(&random));
        assert!(longest <= MAX_RUN + 4, "{longest}");
        assert!(bytes <= random.len(), "{bytes}");
        assert!(calls <= random.len() / MAX_RUN + 1, "{calls}");
        assert!(m > (random.len() / MAX_RUN) as i64, "{m}");
        // Ordinary prose goes in segments of about SEGMENT bytes, each byte once.
        let prose = "the quick brown fox jumps over the lazy dog ".repeat(100_000);
        let (_, (_, bytes, longest)) = with_work(|| estimate(&prose));
        assert!(
            bytes <= prose.len() && longest <= SEGMENT + 64,
            "{bytes} {longest}"
        );
    }

    #[test]
    fn every_kind_of_run_is_cut() {
        for unit in [" ", "\n", "!", "é", "字"] {
            let text = unit.repeat(10_000);
            assert!(segments(&text).all(|s| s.len() <= MAX_RUN + 4), "{unit:?}");
            assert_eq!(segments(&text).collect::<String>(), text);
        }
        // Digits are cut where the pre-tokenizer splits them (in threes), so they count exactly.
        let digits = "7".repeat(100_000);
        assert_eq!(
            estimate(&digits),
            bpe().unwrap().encode_ordinary(&digits).len() as i64
        );
        let mixed = "a.".repeat(100_000);
        assert!(segments(&mixed).all(|s| s.len() <= 4 * SEGMENT + 4));
    }

    #[test]
    fn counting_stops_when_cancelled() {
        let c = Cancel::new();
        c.cancel();
        assert_eq!(estimate_until("some words", &c), None);
        assert_eq!(estimate_until("", &c), Some(0));
    }
}
