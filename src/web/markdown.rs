//! Markdown to safe HTML: pulldown-cmark renders, ammonia removes anything active (scripts, event handlers,
//! `javascript:` links, styles, frames). Model output is untrusted; it is rendered whole, never in pieces.
//!
//! Two changes to what pulldown-cmark writes: an image becomes a link that shows its address (a model's image
//! would be fetched from wherever it points, telling that server who reads the answer, and most are invented
//! addresses that show a broken icon), and a fenced code block gets a header with its language and a copy
//! button (shown by the page's script).

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};
use std::sync::LazyLock;

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.link_rel(Some("noopener noreferrer nofollow"));
    // Images in raw HTML go too: see the module documentation.
    b.rm_tags(["img"]);
    b.add_tags(["button"]);
    b.add_tag_attributes("button", ["type", "hidden"]);
    b.add_allowed_classes("div", ["code", "code-head"]);
    b.add_allowed_classes("span", ["lang"]);
    b.add_allowed_classes("button", ["copy-code"]);
    b.add_allowed_classes("a", ["image-link"]);
    b
});

pub fn render(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    // The address of the image being turned into a link, shown after its text.
    let mut image: Option<CowStr> = None;
    let events = Parser::new_ext(markdown, opts).flat_map(|event| -> Vec<Event> {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                image = Some(dest_url.clone());
                vec![
                    Event::Html(
                        format!(
                            "<a class=\"image-link\" href=\"{}\">",
                            escape(&dest_url)
                        )
                        .into(),
                    ),
                    Event::Text("Image: ".into()),
                ]
            }
            Event::End(TagEnd::Image) => {
                let url = image.take().map(|u| u.to_string()).unwrap_or_default();
                vec![
                    Event::Html("</a>".into()),
                    Event::Text(format!(" ({url})").into()),
                ]
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match &kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or(""),
                    CodeBlockKind::Indented => "",
                };
                let label = if lang.is_empty() { "code" } else { lang };
                vec![
                    Event::Html(
                        format!(
                            "<div class=\"code\"><div class=\"code-head\"><span class=\"lang\">{}</span>\
                             <button type=\"button\" class=\"copy-code\" hidden>Copy</button></div>",
                            escape(label)
                        )
                        .into(),
                    ),
                    Event::Start(Tag::CodeBlock(kind)),
                ]
            }
            Event::End(TagEnd::CodeBlock) => {
                vec![Event::End(TagEnd::CodeBlock), Event::Html("</div>".into())]
            }
            other => vec![other],
        }
    });
    html::push_html(&mut out, events);
    CLEANER.clean(&out).to_string()
}

fn escape(text: &str) -> String {
    crate::util::escape_html(text)
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
            "<button onclick=\"alert(1)\" formaction=\"/x\">b</button>",
        ] {
            let out = render(evil);
            let lower = out.to_lowercase();
            assert!(!lower.contains("<script"), "{out}");
            assert!(!lower.contains("onerror"), "{out}");
            assert!(!lower.contains("onclick"), "{out}");
            assert!(!lower.contains("javascript:"), "{out}");
            assert!(!lower.contains("<iframe"), "{out}");
            assert!(!lower.contains("formaction"), "{out}");
        }
    }

    #[test]
    fn images_become_links_that_show_their_address() {
        let html = render(
            "see ![a cat](https://img.example/cat.png \"t\") and <img src=\"https://x.example/y.png\">",
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("href=\"https://img.example/cat.png\""),
            "{html}"
        );
        assert!(
            html.contains("Image: a cat</a> (https://img.example/cat.png)"),
            "{html}"
        );
        // A hostile address stays inert: shown as text, never a link.
        let html = render("![x](javascript:alert(1))");
        assert!(!html.to_lowercase().contains("href=\"javascript"), "{html}");
    }

    #[test]
    fn code_blocks_carry_their_language_and_a_copy_button() {
        let html =
            render("```rust title\nfn main() {}\n```\n\n```\nplain\n```\n\n```<b>x</b>\ny\n```\n");
        assert!(html.contains("<span class=\"lang\">rust</span>"), "{html}");
        assert!(html.contains("<span class=\"lang\">code</span>"), "{html}");
        assert!(
            html.contains("<button type=\"button\" class=\"copy-code\" hidden=\"\">Copy</button>")
                || html.contains("class=\"copy-code\" hidden>Copy"),
            "{html}"
        );
        assert!(!html.contains("<b>x</b>"), "{html}");
    }
}
