//! Markdown to safe HTML: pulldown-cmark renders, ammonia removes anything active (scripts, event handlers,
//! `javascript:` links, styles, frames). Model output is untrusted; it is rendered whole, never in pieces.

use pulldown_cmark::{Options, Parser, html};
use std::sync::LazyLock;

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.link_rel(Some("noopener noreferrer nofollow"));
    b
});

pub fn render(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(markdown, opts));
    CLEANER.clean(&out).to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn formatting_survives_and_active_content_does_not() {
        let html = render("**bold** and `code`\n\n```rust\nfn main() {}\n```\n");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<pre><code"));
        for evil in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<div style=\"background:url(x)\" onclick=\"alert(1)\">x</div>",
        ] {
            let out = render(evil);
            let lower = out.to_lowercase();
            assert!(!lower.contains("<script"), "{out}");
            assert!(!lower.contains("onerror"), "{out}");
            assert!(!lower.contains("onclick"), "{out}");
            assert!(!lower.contains("javascript:"), "{out}");
            assert!(!lower.contains("<iframe"), "{out}");
        }
    }
}
