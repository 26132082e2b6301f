//! Server-side syntax highlighting for code blocks in answers: code in, HTML out, with tokens wrapped in
//! `<span class="hl-…">` for the stylesheet to colour. Done on the server so the page needs no script for it,
//! a saved answer keeps its colours, and the HTML cleaner only has to let through the few classes in
//! [`CLASSES`].
//!
//! One small lexer serves most languages, driven by a `Spec` per language (comment markers, quotes, word
//! lists); markup, CSS and diffs have short scanners of their own. It is deliberately approximate (no parsing,
//! no regex literals, no nested languages except `<script>` and `<style>` in HTML): a wrong colour is harmless,
//! a panic or a slow page on a model's odd output is not. Hence three rules the code keeps:
//! - slices are taken at char boundaries: scanners stop only at ASCII bytes or at the end of the text;
//! - time is linear: a scan that may not find what it looks for either consumes what it scanned (an unclosed
//!   comment runs to the end) or looks only a few bytes ahead;
//! - all text is escaped, and spans never nest.

/// The span classes [`highlight`] writes, for the HTML cleaner's allow-list and the stylesheet.
pub const CLASSES: &[&str] = &[
    "hl-kw", "hl-str", "hl-com", "hl-num", "hl-lit", "hl-ty", "hl-fn", "hl-attr", "hl-tag",
    "hl-var", "hl-key", "hl-add", "hl-del",
];

/// `code` as HTML, tokens wrapped in `<span class="hl-…">` and all text escaped, or `None` when the language
/// (a fence's info string: only its first word counts) is unknown; the caller then writes the text plainly.
pub fn highlight(lang: &str, code: &str) -> Option<String> {
    let lang = lang
        .trim()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Some(match scanner_for(&lang)? {
        Scanner::Code(spec) => Lexer::new(code, spec).run(),
        Scanner::Markup => markup(code),
        Scanner::Css { scss } => css(code, scss),
        Scanner::Diff => diff(code),
    })
}

/// What a token is; each has one class in [`CLASSES`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Kw,
    Str,
    Com,
    Num,
    /// `true`, `null`, `None`, HTML entities, Ruby symbols.
    Lit,
    /// Builtin and capitalised type names, Rust lifetimes, CSS class and id selectors, TOML sections.
    Ty,
    /// A name being called or defined.
    Fn,
    /// Rust attributes, decorators and annotations, C preprocessor lines, HTML attribute names, `<?php`.
    Attr,
    Tag,
    /// Shell, PHP and Ruby variables, interpolations, YAML anchors, CSS custom properties.
    Var,
    /// Keys in JSON, YAML, TOML and CSS declarations.
    Key,
    Add,
    Del,
}

impl Class {
    const fn name(self) -> &'static str {
        match self {
            Class::Kw => "hl-kw",
            Class::Str => "hl-str",
            Class::Com => "hl-com",
            Class::Num => "hl-num",
            Class::Lit => "hl-lit",
            Class::Ty => "hl-ty",
            Class::Fn => "hl-fn",
            Class::Attr => "hl-attr",
            Class::Tag => "hl-tag",
            Class::Var => "hl-var",
            Class::Key => "hl-key",
            Class::Add => "hl-add",
            Class::Del => "hl-del",
        }
    }
}

enum Scanner {
    Code(&'static Spec),
    Markup,
    Css { scss: bool },
    Diff,
}

fn scanner_for(lang: &str) -> Option<Scanner> {
    let spec = match lang {
        "rust" | "rs" => &RUST,
        "python" | "py" | "python3" | "py3" => &PYTHON,
        "javascript" | "js" | "jsx" | "mjs" | "cjs" | "node" => &JS,
        "typescript" | "ts" | "tsx" | "mts" => &TS,
        "json" | "jsonc" | "json5" => &JSON,
        "bash" | "sh" | "shell" | "zsh" | "console" | "shell-session" => &SHELL,
        "c" | "h" => &C,
        "cpp" | "c++" | "cc" | "cxx" | "hpp" | "hh" => &CPP,
        "csharp" | "cs" | "c#" => &CSHARP,
        "java" => &JAVA,
        "kotlin" | "kt" | "kts" => &KOTLIN,
        "go" | "golang" => &GO,
        "swift" => &SWIFT,
        "ruby" | "rb" => &RUBY,
        "php" => &PHP,
        "sql" | "mysql" | "postgresql" | "postgres" | "sqlite" | "plsql" => &SQL,
        "yaml" | "yml" => &YAML,
        "toml" | "ini" => &TOML,
        "dockerfile" | "docker" => &DOCKERFILE,
        "lua" => &LUA,
        "html" | "htm" | "xhtml" | "xml" | "svg" => return Some(Scanner::Markup),
        "css" => return Some(Scanner::Css { scss: false }),
        "scss" | "less" => return Some(Scanner::Css { scss: true }),
        "diff" | "patch" => return Some(Scanner::Diff),
        _ => return None,
    };
    Some(Scanner::Code(spec))
}

// ---------------------------------------------------------------------------------------------------------
// Output

/// The HTML being written. Tokens of one class separated only by whitespace share a span, which keeps the
/// output small for runs like `""""` or a block of added lines in a diff.
struct Out {
    html: String,
    open: Option<Class>,
    /// Whitespace after the open span: it joins the span if the next token has the same class.
    gap: String,
}

impl Out {
    fn token(&mut self, class: Class, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.open == Some(class) {
            self.html.push_str(&self.gap);
            self.gap.clear();
        } else {
            self.close();
            self.html.push_str("<span class=\"");
            self.html.push_str(class.name());
            self.html.push_str("\">");
            self.open = Some(class);
        }
        escape_into(&mut self.html, text);
    }

    fn plain(&mut self, text: &str) {
        if self.open.is_some() && text.chars().all(char::is_whitespace) {
            self.gap.push_str(text);
        } else {
            self.close();
            escape_into(&mut self.html, text);
        }
    }

    /// Already highlighted HTML (an embedded script or style).
    fn raw(&mut self, html: &str) {
        self.close();
        self.html.push_str(html);
    }

    fn close(&mut self) {
        if self.open.take().is_some() {
            self.html.push_str("</span>");
        }
        self.html.push_str(&self.gap);
        self.gap.clear();
    }
}

fn escape_into(html: &mut String, text: &str) {
    let mut done = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        html.push_str(&text[done..i]);
        html.push_str(entity);
        done = i + 1;
    }
    html.push_str(&text[done..]);
}

/// A position in the code and the HTML written up to it.
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
    out: Out,
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str) -> Self {
        let html = String::with_capacity(src.len() * 2);
        Cursor {
            src,
            pos: 0,
            out: Out {
                html,
                open: None,
                gap: String::new(),
            },
        }
    }

    fn finish(mut self) -> String {
        self.out.close();
        self.out.html
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.src.as_bytes().get(i).copied()
    }

    fn prev_byte(&self) -> Option<u8> {
        self.pos.checked_sub(1).and_then(|i| self.byte(i))
    }

    /// Where `end` really is: within the text and on a char boundary (scanners aim for both; this is the net).
    fn boundary(&self, end: usize) -> usize {
        let mut end = end.min(self.src.len());
        while !self.src.is_char_boundary(end) {
            end += 1;
        }
        end
    }

    /// Writes the text up to `end` as one token.
    fn emit(&mut self, class: Class, end: usize) {
        let end = self.boundary(end);
        if end > self.pos {
            self.out.token(class, &self.src[self.pos..end]);
            self.pos = end;
        }
    }

    /// Writes the text up to `end` plainly.
    fn skip(&mut self, end: usize) {
        let end = self.boundary(end);
        if end > self.pos {
            self.out.plain(&self.src[self.pos..end]);
            self.pos = end;
        }
    }

    fn skip_char(&mut self) {
        let len = self.peek().map_or(1, char::len_utf8);
        self.skip(self.pos + len);
    }

    fn embed(&mut self, end: usize, html: &str) {
        self.out.raw(html);
        self.pos = self.boundary(end);
    }

    /// Where `needle` starts, at or after `from`.
    fn find(&self, from: usize, needle: &str) -> Option<usize> {
        self.src.get(from..)?.find(needle).map(|k| from + k)
    }

    /// Just past `needle` when found after `from`; else the end of the text (an unclosed comment runs on).
    fn past(&self, from: usize, needle: &str) -> usize {
        self.find(from, needle)
            .map_or(self.src.len(), |k| k + needle.len())
    }

    fn line_end(&self) -> usize {
        self.find(self.pos, "\n").unwrap_or(self.src.len())
    }

    fn spaces_end(&self, from: usize) -> usize {
        let bytes = self.src.as_bytes();
        from + bytes
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count()
    }

    fn colon_follows(&self, end: usize) -> bool {
        self.byte(self.spaces_end(end)) == Some(b':')
    }
}

// ---------------------------------------------------------------------------------------------------------
// The generic lexer and its per-language specs

/// How a language's code looks to [`Lexer`]. Fields not set come from [`BASE`].
struct Spec {
    line_comments: &'static [&'static str],
    block_comment: Option<(&'static str, &'static str)>,
    nested_comments: bool,
    /// `#` starts a comment only at the start of a word (in shell, `a#b` is one word).
    hash_needs_space: bool,
    /// Quotes with backslash escapes.
    strings: &'static [u8],
    /// Quotes without escapes: shell and SQL `'…'`, Go `` `…` ``.
    raw_strings: &'static [u8],
    multiline_strings: bool,
    triple_quotes: bool,
    /// Python's `f"…"`, `rb'…'`.
    string_prefixes: bool,
    /// JavaScript `` `…${x}…` ``.
    template_backticks: bool,
    /// Lua `[[…]]`.
    long_strings: Option<(&'static str, &'static str)>,
    /// Raw and byte strings, lifetimes, `#[…]` and `name!(…)`.
    rust: bool,
    sigils: Sigils,
    /// `@decorator`, `@Annotation`.
    at_attrs: bool,
    /// Fixed marks written as attributes: PHP's `<?php` and `?>`.
    meta_marks: &'static [&'static str],
    /// A string followed by `:` is a key (JSON).
    keys: bool,
    line_mode: LineMode,
    case_insensitive: bool,
    /// A name followed by `(` is a function.
    calls: bool,
    /// ... even when capitalised (Go's exported functions).
    calls_first: bool,
    capitalised_types: bool,
    /// Ruby `:symbol`.
    symbols: bool,
    ident_extra: &'static [u8],
    keywords: &'static [&'static str],
    literals: &'static [&'static str],
    types: &'static [&'static str],
    /// Builtin commands, coloured as functions.
    builtins: &'static [&'static str],
}

impl Spec {
    fn has(&self, list: &[&str], word: &str) -> bool {
        if self.case_insensitive {
            list.iter().any(|w| w.eq_ignore_ascii_case(word))
        } else {
            list.contains(&word)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sigils {
    None,
    /// `$x`, `${x}`, `$1`, `$@` (also inside double quotes).
    Shell,
    /// `$x` (also inside double quotes).
    Php,
    /// `@x`, `@@x`, `$x`.
    Ruby,
    /// `&anchor`, `*alias`.
    Yaml,
}

/// What the lexer looks at first on each line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LineMode {
    Plain,
    /// `#include` and friends: the whole line.
    Preprocessor,
    /// Keys, `---`, list dashes and block scalars (`|`, `>`).
    Yaml,
    /// `[sections]`, keys before `=`, INI `;` comments.
    Toml,
}

/// A word list: `words![if else]` is `&["if", "else"]`, which rustfmt leaves as compact as it is written.
macro_rules! words {
    ($($word:tt)*) => {
        &[$(stringify!($word)),*]
    };
}

const BASE: Spec = Spec {
    line_comments: &[],
    block_comment: None,
    nested_comments: false,
    hash_needs_space: false,
    strings: b"\"'",
    raw_strings: b"",
    multiline_strings: false,
    triple_quotes: false,
    string_prefixes: false,
    template_backticks: false,
    long_strings: None,
    rust: false,
    sigils: Sigils::None,
    at_attrs: false,
    meta_marks: &[],
    keys: false,
    line_mode: LineMode::Plain,
    case_insensitive: false,
    calls: true,
    calls_first: false,
    capitalised_types: true,
    symbols: false,
    ident_extra: b"",
    keywords: &[],
    literals: &[],
    types: &[],
    builtins: &[],
};

const C_COMMENTS: Spec = Spec {
    line_comments: &["//"],
    block_comment: Some(("/*", "*/")),
    ..BASE
};
const DATA: Spec = Spec {
    calls: false,
    capitalised_types: false,
    ..BASE
};
const NULLS: &[&str] = words![true false null];

const RUST: Spec = Spec {
    nested_comments: true,
    strings: b"\"",
    multiline_strings: true,
    rust: true,
    keywords: words![as async await break const continue crate dyn else enum extern fn for if impl
        in let loop match mod move mut pub ref return self Self static struct super trait type
        unsafe use where while yield union macro_rules],
    literals: words![true false None],
    types: words![i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str],
    ..C_COMMENTS
};

const PYTHON: Spec = Spec {
    line_comments: &["#"],
    triple_quotes: true,
    string_prefixes: true,
    at_attrs: true,
    keywords: words![and as assert async await break class continue def del elif else except finally
        for from global if import in is lambda nonlocal not or pass raise return try while with
        yield match case],
    literals: words![True False None Ellipsis NotImplemented],
    types: words![int float str bool bytes list dict set tuple object complex],
    ..BASE
};

const JS_KEYWORDS: &[&str] = words![async await break case catch class const continue debugger
    default delete do else export extends finally for from function if import in instanceof let new
    of return static super switch this throw try typeof var void while with yield];

const JS: Spec = Spec {
    template_backticks: true,
    at_attrs: true,
    ident_extra: b"$",
    keywords: JS_KEYWORDS,
    literals: words![true false null undefined NaN Infinity],
    ..C_COMMENTS
};

const TS: Spec = Spec {
    keywords: words![async await break case catch class const continue debugger default delete do
        else export extends finally for from function if import in instanceof let new of return
        static super switch this throw try typeof var void while with yield abstract as asserts
        declare enum implements interface is keyof namespace private protected public readonly type
        satisfies infer],
    types: words![any boolean never number string symbol unknown bigint object],
    ..JS
};

const JSON: Spec = Spec {
    strings: b"\"",
    keys: true,
    literals: NULLS,
    ..Spec {
        line_comments: &["//"],
        block_comment: Some(("/*", "*/")),
        ..DATA
    }
};

const SHELL: Spec = Spec {
    line_comments: &["#"],
    hash_needs_space: true,
    strings: b"\"",
    raw_strings: b"'",
    multiline_strings: true,
    sigils: Sigils::Shell,
    capitalised_types: false,
    keywords: words![if then else elif fi for while until do done case esac function in select time
        return local export readonly declare typeset unset shift break continue exit],
    literals: words![true false],
    builtins: words![echo printf cd pwd read eval exec set trap source alias test sudo],
    ..BASE
};

const C_TYPES: &[&str] = words![char double float int long short signed unsigned void bool size_t
    ssize_t int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t _Bool];

const C: Spec = Spec {
    line_mode: LineMode::Preprocessor,
    keywords: words![auto break case const continue default do else enum extern for goto if inline
        register restrict return sizeof static struct switch typedef union volatile while],
    literals: words![NULL true false],
    types: C_TYPES,
    ..C_COMMENTS
};

const CPP: Spec = Spec {
    keywords: words![auto break case const continue default do else enum extern for goto if inline
        register return sizeof static struct switch typedef union volatile while alignas alignof
        catch class constexpr consteval const_cast co_await co_return co_yield decltype delete
        dynamic_cast explicit export friend mutable namespace new noexcept operator private
        protected public reinterpret_cast static_assert static_cast template this thread_local throw
        try typeid typename using virtual override final concept requires],
    literals: words![nullptr NULL true false],
    ..C
};

const CSHARP: Spec = Spec {
    line_mode: LineMode::Preprocessor,
    keywords: words![abstract as base break case catch checked class const continue default delegate
        do else enum event explicit extern finally fixed for foreach goto if implicit in interface
        internal is lock namespace new operator out override params private protected public
        readonly ref return sealed sizeof stackalloc static struct switch this throw try typeof
        unchecked unsafe using virtual volatile while async await var yield get set record init
        where],
    literals: NULLS,
    types: words![bool byte sbyte char decimal double float int uint long ulong short ushort object
        string void dynamic nint nuint],
    ..C_COMMENTS
};

const JAVA: Spec = Spec {
    triple_quotes: true,
    at_attrs: true,
    keywords: words![abstract assert break case catch class const continue default do else enum
        extends final finally for goto if implements import instanceof interface native new package
        private protected public return static strictfp super switch synchronized this throw throws
        transient try volatile while var record sealed permits yield],
    literals: NULLS,
    types: words![boolean byte char double float int long short void],
    ..C_COMMENTS
};

const KOTLIN: Spec = Spec {
    nested_comments: true,
    triple_quotes: true,
    at_attrs: true,
    keywords: words![as break class continue do else for fun if in interface is object package
        return super this throw try typealias val var when while by catch constructor companion data
        enum finally import init internal lateinit open override private protected public sealed
        suspend inline reified vararg abstract annotation const],
    literals: NULLS,
    ..C_COMMENTS
};

const GO: Spec = Spec {
    raw_strings: b"`",
    calls_first: true,
    keywords: words![break case chan const continue default defer else fallthrough for func go goto
        if import interface map package range return select struct switch type var],
    literals: words![true false nil iota],
    types: words![bool byte complex64 complex128 error float32 float64 int int8 int16 int32 int64
        rune string uint uint8 uint16 uint32 uint64 uintptr any],
    ..C_COMMENTS
};

const SWIFT: Spec = Spec {
    nested_comments: true,
    strings: b"\"",
    triple_quotes: true,
    at_attrs: true,
    keywords: words![associatedtype class deinit enum extension fileprivate func import init inout
        internal let open operator private protocol public rethrows static struct subscript
        typealias var break case continue default defer do else fallthrough for guard if in repeat
        return switch where while as catch is super self Self throw throws try async await some any
        mutating override lazy weak final convenience required],
    literals: words![true false nil],
    ..C_COMMENTS
};

const RUBY: Spec = Spec {
    line_comments: &["#"],
    multiline_strings: true,
    sigils: Sigils::Ruby,
    symbols: true,
    keywords: words![alias and begin break case class def defined do else elsif end ensure for if in
        module next not or redo rescue retry return self super then undef unless until when while
        yield],
    literals: words![true false nil],
    builtins: words![puts print require require_relative attr_accessor attr_reader raise],
    ..BASE
};

const PHP: Spec = Spec {
    line_comments: &["//", "#"],
    multiline_strings: true,
    sigils: Sigils::Php,
    meta_marks: &["<?php", "<?=", "?>"],
    case_insensitive: true,
    keywords: words![abstract and array as break callable case catch class clone const continue
        declare default do echo else elseif empty enddeclare endfor endforeach endif endswitch
        endwhile extends final finally fn for foreach function global goto if implements include
        include_once instanceof insteadof interface isset list match namespace new or print private
        protected public readonly require require_once return static switch throw trait try unset
        use var while xor yield],
    literals: NULLS,
    types: words![int float string bool void mixed object iterable never],
    ..C_COMMENTS
};

const SQL: Spec = Spec {
    line_comments: &["--"],
    strings: b"",
    raw_strings: b"'\"`",
    case_insensitive: true,
    capitalised_types: false,
    keywords: words![select from where and or not insert into values update set delete create table
        drop alter add column index primary key foreign references join inner left right outer full
        cross on as group by order having limit offset union all distinct case when then else end is
        in exists between like ilike asc desc default constraint unique check view with recursive
        returning begin commit rollback transaction if replace trigger function procedure returns
        declare database schema grant revoke cascade using natural over partition],
    literals: NULLS,
    types: words![int integer bigint smallint serial bigserial text varchar char boolean bool date
        time timestamp timestamptz numeric decimal real float double precision json jsonb uuid
        blob],
    ..C_COMMENTS
};

const YAML: Spec = Spec {
    line_comments: &["#"],
    hash_needs_space: true,
    strings: b"\"",
    raw_strings: b"'",
    keys: true,
    sigils: Sigils::Yaml,
    line_mode: LineMode::Yaml,
    literals: words![true false null True False Null TRUE FALSE NULL yes no on off],
    ..DATA
};

const TOML: Spec = Spec {
    line_comments: &["#"],
    strings: b"\"",
    raw_strings: b"'",
    triple_quotes: true,
    line_mode: LineMode::Toml,
    literals: words![true false inf nan],
    ..DATA
};

const DOCKERFILE: Spec = Spec {
    line_comments: &["#"],
    hash_needs_space: true,
    strings: b"\"",
    raw_strings: b"'",
    sigils: Sigils::Shell,
    keywords: words![FROM RUN CMD LABEL MAINTAINER EXPOSE ENV ADD COPY ENTRYPOINT VOLUME USER
        WORKDIR ARG ONBUILD STOPSIGNAL HEALTHCHECK SHELL AS],
    ..DATA
};

const LUA: Spec = Spec {
    line_comments: &["--"],
    block_comment: Some(("--[[", "]]")),
    long_strings: Some(("[[", "]]")),
    keywords: words![and break do else elseif end for function goto if in local not or repeat return
        then until while],
    literals: words![true false nil],
    ..BASE
};

/// What a keyword says the next name is: `fn main`, `class Point`.
fn naming(keyword: &str) -> Option<Class> {
    const FNS: &[&str] = words![fn def function func fun sub];
    const TYPES: &[&str] =
        words![class struct enum trait interface type union protocol record module];
    let is = |list: &[&str]| list.iter().any(|k| k.eq_ignore_ascii_case(keyword));
    if is(FNS) {
        Some(Class::Fn)
    } else if is(TYPES) {
        Some(Class::Ty)
    } else {
        None
    }
}

/// `String`, `T`: a type by convention; `MAX_LEN` is not.
fn is_capitalised(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(char::is_uppercase)
        && (chars.as_str().is_empty() || word.chars().any(char::is_lowercase))
}

struct Lexer<'a> {
    cur: Cursor<'a>,
    spec: &'static Spec,
    /// The class of the next name, set by keywords like `fn` and `class`.
    expect: Option<Class>,
    /// The indent of a YAML key whose value is a block scalar: deeper lines are its text.
    yaml_block: Option<usize>,
}

impl<'a> Lexer<'a> {
    fn new(code: &'a str, spec: &'static Spec) -> Self {
        Lexer {
            cur: Cursor::new(code),
            spec,
            expect: None,
            yaml_block: None,
        }
    }

    fn run(mut self) -> String {
        let mut line_start = true;
        loop {
            if line_start {
                line_start = false;
                self.line_start();
            }
            let Some(c) = self.cur.peek() else { break };
            let before = self.cur.pos;
            if c.is_whitespace() {
                line_start = c == '\n';
            } else {
                if !self.is_ident_start(c) {
                    self.expect = None;
                }
                self.token(c);
            }
            // Every step moves on, whatever a scanner did.
            if self.cur.pos == before {
                self.cur.skip_char();
            }
        }
        self.cur.finish()
    }

    fn is_ident_start(&self, c: char) -> bool {
        c.is_alphabetic()
            || c == '_'
            || (c.is_ascii() && self.spec.ident_extra.contains(&(c as u8)))
    }

    fn starts_ident(&self, i: usize) -> bool {
        self.cur
            .src
            .get(i..)
            .and_then(|s| s.chars().next())
            .is_some_and(|c| self.is_ident_start(c))
    }

    fn ident_end(&self, from: usize) -> usize {
        let word = self.cur.src.get(from..).unwrap_or_default();
        from + word
            .chars()
            .take_while(|&c| c.is_alphanumeric() || self.is_ident_start(c))
            .map(char::len_utf8)
            .sum::<usize>()
    }

    /// One token starting with `c` (not whitespace).
    fn token(&mut self, c: char) {
        let spec = self.spec;
        let rest = self.cur.rest();
        let pos = self.cur.pos;
        if let Some((open, close)) = spec.block_comment
            && rest.starts_with(open)
        {
            return self.block_comment(open, close);
        }
        if let Some(marker) = spec.line_comments.iter().find(|m| rest.starts_with(**m))
            && self.comment_may_start(marker)
        {
            let end = self.cur.line_end();
            return self.cur.emit(Class::Com, end);
        }
        if let Some((open, close)) = spec.long_strings
            && rest.starts_with(open)
        {
            let end = self.cur.past(pos + open.len(), close);
            return self.cur.emit(Class::Str, end);
        }
        if let Some(mark) = spec.meta_marks.iter().find(|m| rest.starts_with(**m)) {
            return self.cur.emit(Class::Attr, pos + mark.len());
        }
        if spec.rust && self.rust_token(c) {
            return;
        }
        let prefix = if spec.string_prefixes {
            string_prefix_len(rest)
        } else {
            0
        };
        let quoted = &rest[prefix..];
        if spec.triple_quotes && (quoted.starts_with("\"\"\"") || quoted.starts_with("'''")) {
            return self.string(prefix + 3, &quoted[..3], true, true);
        }
        if prefix > 0 {
            return self.string(prefix + 1, &quoted[..1], true, false);
        }
        if c.is_ascii() {
            let b = c as u8;
            if b == b'`' && spec.template_backticks {
                return self.string(1, "`", true, true);
            }
            if spec.strings.contains(&b) {
                return self.string(1, &rest[..1], true, spec.multiline_strings);
            }
            if spec.raw_strings.contains(&b) {
                return self.string(1, &rest[..1], false, spec.multiline_strings || b == b'`');
            }
        }
        if let Some(len) = self.sigil_len(pos) {
            return self.cur.emit(Class::Var, pos + len);
        }
        if spec.at_attrs && c == '@' && self.starts_ident(pos + 1) {
            let mut end = self.ident_end(pos + 1);
            while self.cur.byte(end) == Some(b'.') && self.starts_ident(end + 1) {
                end = self.ident_end(end + 1);
            }
            return self.cur.emit(Class::Attr, end);
        }
        let after_word = self
            .cur
            .prev_byte()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        let digit_next = self.cur.byte(pos + 1).is_some_and(|b| b.is_ascii_digit());
        if c.is_ascii_digit() || (c == '.' && digit_next && !after_word) {
            return self.cur.emit(Class::Num, self.number_end(pos));
        }
        if self.is_ident_start(c) {
            return self.ident();
        }
        if spec.symbols
            && c == ':'
            && self.starts_ident(pos + 1)
            && !after_word
            && self.cur.prev_byte() != Some(b':')
        {
            return self.cur.emit(Class::Lit, self.ident_end(pos + 1));
        }
        self.cur.skip_char();
    }

    fn comment_may_start(&self, marker: &str) -> bool {
        !(self.spec.hash_needs_space && marker == "#")
            || self
                .cur
                .prev_byte()
                .is_none_or(|b| b.is_ascii_whitespace() || b";|&(".contains(&b))
    }

    fn block_comment(&mut self, open: &str, close: &str) {
        let bytes = self.cur.src.as_bytes();
        let mut i = self.cur.pos + open.len();
        let end = if self.spec.nested_comments {
            let mut depth = 1usize;
            loop {
                let rest = bytes.get(i..).unwrap_or_default();
                if rest.is_empty() {
                    break bytes.len();
                } else if rest.starts_with(close.as_bytes()) {
                    i += close.len();
                    depth -= 1;
                    if depth == 0 {
                        break i;
                    }
                } else if rest.starts_with(open.as_bytes()) {
                    i += open.len();
                    depth += 1;
                } else {
                    i += 1;
                }
            }
        } else {
            self.cur.past(i, close)
        };
        self.cur.emit(Class::Com, end);
    }

    /// A string from the cursor: `open_len` bytes of prefix and opening quote, then text up to `close`. It
    /// ends at the line's end when not `multiline`, so an unclosed quote colours one line, not the rest of the
    /// answer. Shell and PHP variables and JavaScript `${…}` inside are marked as variables.
    fn string(&mut self, open_len: usize, close: &str, escapes: bool, multiline: bool) {
        let bytes = self.cur.src.as_bytes();
        let mut i = self.cur.pos + open_len;
        let end = loop {
            let Some(&b) = bytes.get(i) else {
                break bytes.len();
            };
            if escapes && b == b'\\' {
                i += 2;
                continue;
            }
            if bytes[i..].starts_with(close.as_bytes()) {
                break i + close.len();
            }
            if b == b'\n' && !multiline {
                break i;
            }
            if b == b'$'
                && let Some(len) = self.interpolation(i, close)
            {
                self.cur.emit(Class::Str, i);
                self.cur.emit(Class::Var, i + len);
                i += len;
                continue;
            }
            i += 1;
        };
        let key = self.spec.keys && self.cur.colon_follows(end);
        self.cur
            .emit(if key { Class::Key } else { Class::Str }, end);
    }

    /// The length of a variable or `${…}` at `i` (a `$`) inside a string closed by `close`.
    fn interpolation(&self, i: usize, close: &str) -> Option<usize> {
        match close {
            "`" if self.spec.template_backticks && self.cur.byte(i + 1) == Some(b'{') => {
                Some(self.matching_end(i + 1, b'{', b'}') - i)
            }
            "\"" if matches!(self.spec.sigils, Sigils::Shell | Sigils::Php) => self.sigil_len(i),
            _ => None,
        }
    }

    /// Just past the bracket closing the one at `open_at`, or the end of the text.
    fn matching_end(&self, open_at: usize, open: u8, close: u8) -> usize {
        let bytes = self.cur.src.as_bytes();
        let mut depth = 0usize;
        for (i, &b) in bytes.iter().enumerate().skip(open_at) {
            if b == open {
                depth += 1;
            } else if b == close {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
        }
        bytes.len()
    }

    /// The length of a variable starting at `i`, in languages whose variables have sigils.
    fn sigil_len(&self, i: usize) -> Option<usize> {
        let bytes = self.cur.src.as_bytes();
        let next = bytes.get(i + 1).copied();
        let word = |from: usize| self.starts_ident(from).then(|| self.ident_end(from) - i);
        match (self.spec.sigils, *bytes.get(i)?) {
            (Sigils::Shell, b'$') => match next? {
                b'{' => {
                    // `${name}` closes on its line and soon; looking a bounded way keeps `${${${…` linear.
                    let body = bytes.get(i + 2..)?.iter().take(64);
                    let k = body.take_while(|&&b| b != b'\n').position(|&b| b == b'}')?;
                    Some(k + 3)
                }
                b'0'..=b'9' | b'@' | b'*' | b'#' | b'?' | b'$' | b'!' | b'-' => Some(2),
                _ => word(i + 1),
            },
            (Sigils::Php | Sigils::Ruby, b'$') => word(i + 1),
            (Sigils::Ruby, b'@') => word(i + if next == Some(b'@') { 2 } else { 1 }),
            (Sigils::Yaml, b'&' | b'*')
                if self.cur.prev_byte().is_none_or(|b| b.is_ascii_whitespace()) =>
            {
                word(i + 1)
            }
            _ => None,
        }
    }

    fn number_end(&self, start: usize) -> usize {
        let bytes = self.cur.src.as_bytes();
        let hex = bytes
            .get(start..start + 2)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"0x"));
        let mut i = start;
        while let Some(&b) = bytes.get(i) {
            let part = b.is_ascii_alphanumeric()
                || b == b'_'
                || (b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
                || (matches!(b, b'+' | b'-')
                    && !hex
                    && i > start
                    && matches!(bytes[i - 1], b'e' | b'E'));
            if !part {
                break;
            }
            i += 1;
        }
        i
    }

    fn ident(&mut self) {
        let spec = self.spec;
        let src = self.cur.src;
        let start = self.cur.pos;
        let mut end = self.ident_end(start);
        let word = &src[start..end];
        let next = self.cur.byte(end);
        let expect = self.expect.take();
        let class = if spec.has(spec.keywords, word) {
            self.expect = naming(word);
            Some(Class::Kw)
        } else if spec.has(spec.literals, word) {
            Some(Class::Lit)
        } else if spec.has(spec.types, word) {
            Some(Class::Ty)
        } else if expect.is_some() {
            expect
        } else if spec.rust
            && next == Some(b'!')
            && matches!(self.cur.byte(end + 1), Some(b'(' | b'[' | b'{'))
        {
            end += 1;
            Some(Class::Fn)
        } else if spec.sigils == Sigils::Shell
            && next == Some(b'=')
            && self.cur.prev_byte() != Some(b'-')
        {
            Some(Class::Var)
        } else if spec.calls && spec.calls_first && next == Some(b'(') {
            Some(Class::Fn)
        } else if spec.capitalised_types && is_capitalised(word) {
            Some(Class::Ty)
        } else if (spec.calls && next == Some(b'(')) || spec.has(spec.builtins, word) {
            Some(Class::Fn)
        } else {
            None
        };
        match class {
            Some(class) => self.cur.emit(class, end),
            None => self.cur.skip(end),
        }
    }

    /// Rust's own tokens: `'a` and `'x'`, `r#"…"#`, `b"…"`, `#[…]`. False when `c` starts none of them.
    fn rust_token(&mut self, c: char) -> bool {
        let rest = self.cur.rest();
        match c {
            '\'' => self.rust_quote(0),
            '#' if rest.starts_with("#[") || rest.starts_with("#![") => {
                let open = self.cur.pos + if rest.starts_with("#[") { 1 } else { 2 };
                let end = self.matching_end(open, b'[', b']');
                self.cur.emit(Class::Attr, end);
            }
            'b' | 'r' | 'c' => return self.rust_prefixed(),
            _ => return false,
        }
        true
    }

    /// A char literal (`'x'`, `'\n'`, `b'x'` when `prefix` is 1) or a lifetime (`'a`) at the cursor.
    fn rust_quote(&mut self, prefix: usize) {
        let quote = self.cur.pos + prefix;
        let after = self.cur.src.get(quote + 1..).unwrap_or_default();
        match after.chars().next() {
            Some('\\') => {
                // Escapes are short ('\u{10FFFF}'), so the closing quote is sought only a few chars on.
                let close = after
                    .char_indices()
                    .skip(2)
                    .take(10)
                    .find(|&(_, c)| c == '\'' || c == '\n');
                if let Some((k, '\'')) = close {
                    return self.cur.emit(Class::Str, quote + 1 + k + 1);
                }
            }
            Some(c) if c != '\'' && after[c.len_utf8()..].starts_with('\'') => {
                return self.cur.emit(Class::Str, quote + 1 + c.len_utf8() + 1);
            }
            Some(c) if prefix == 0 && self.is_ident_start(c) => {
                return self.cur.emit(Class::Ty, self.ident_end(quote + 1));
            }
            _ => {}
        }
        self.cur.skip(quote + 1);
    }

    /// `r"…"`, `r#"…"#`, `br"…"`, `b"…"`, `c"…"`, `b'x'`; false for a plain name starting with b, r or c.
    fn rust_prefixed(&mut self) -> bool {
        let bytes = self.cur.rest().as_bytes();
        let prefix = match bytes {
            [b'b' | b'c', b'r', ..] => 2,
            [b'b' | b'r' | b'c', ..] => 1,
            _ => return false,
        };
        if bytes[prefix - 1] == b'r' {
            let hashes = bytes[prefix..].iter().take_while(|&&b| b == b'#').count();
            if bytes.get(prefix + hashes) != Some(&b'"') {
                return false;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let end = self.cur.past(self.cur.pos + prefix + hashes + 1, &close);
            self.cur.emit(Class::Str, end);
            return true;
        }
        match bytes.get(prefix) {
            Some(b'"') => self.string(prefix + 1, "\"", true, true),
            Some(b'\'') if bytes[0] == b'b' => self.rust_quote(1),
            _ => return false,
        }
        true
    }

    fn line_start(&mut self) {
        match self.spec.line_mode {
            LineMode::Plain => {}
            LineMode::Preprocessor => {
                let indent_end = self.cur.spaces_end(self.cur.pos);
                if self.cur.byte(indent_end) == Some(b'#') {
                    self.cur.skip(indent_end);
                    let end = self.cur.line_end();
                    self.cur.emit(Class::Attr, end);
                }
            }
            LineMode::Yaml => self.yaml_line(),
            LineMode::Toml => self.toml_line(),
        }
    }

    fn yaml_line(&mut self) {
        let src = self.cur.src;
        let indent_end = self.cur.spaces_end(self.cur.pos);
        let indent = indent_end - self.cur.pos;
        let line_end = self.cur.line_end();
        if let Some(block) = self.yaml_block {
            if src[indent_end..line_end].trim().is_empty() {
                return;
            }
            if indent > block {
                self.cur.skip(indent_end);
                return self.cur.emit(Class::Str, line_end);
            }
            self.yaml_block = None;
        }
        let line = &src[indent_end..line_end];
        if indent == 0 && (line.starts_with("---") || line.starts_with("...")) {
            if line.as_bytes().get(3).is_none_or(u8::is_ascii_whitespace) {
                return self.cur.emit(Class::Kw, indent_end + 3);
            }
            return;
        }
        let mut start = indent_end;
        while self.cur.byte(start) == Some(b'-')
            && matches!(self.cur.byte(start + 1), Some(b' ' | b'\t'))
        {
            start = self.cur.spaces_end(start + 1);
        }
        self.cur.skip(start);
        let line = &src[start..line_end];
        if let Some(len) = yaml_key_len(line) {
            self.cur.emit(Class::Key, start + len);
            let value = line[len..]
                .trim_start()
                .strip_prefix(':')
                .unwrap_or_default()
                .trim_start();
            if value.starts_with(['|', '>']) {
                self.yaml_block = Some(indent);
            }
        }
    }

    fn toml_line(&mut self) {
        let src = self.cur.src;
        let indent_end = self.cur.spaces_end(self.cur.pos);
        let line_end = self.cur.line_end();
        self.cur.skip(indent_end);
        let line = &src[indent_end..line_end];
        if line.starts_with(';') {
            return self.cur.emit(Class::Com, line_end);
        }
        if line.starts_with('[') {
            // A section is alone on its line; `[1, 2],` inside a multi-line array is not one.
            let body = line.find('#').map_or(line, |k| &line[..k]).trim_end();
            if body.ends_with(']') && !body.contains(',') {
                self.cur.emit(Class::Ty, indent_end + body.len());
            }
            return;
        }
        if let Some(len) = toml_key_len(line) {
            self.cur.emit(Class::Key, indent_end + len);
        }
    }
}

/// The length of a Python string prefix (`f`, `rb`) starting `rest` when a quote follows it, else 0.
fn string_prefix_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    match bytes.iter().take(3).position(|b| !b"rRbBfFuU".contains(b)) {
        Some(len @ 1..=2) if matches!(bytes[len], b'"' | b'\'') => len,
        _ => 0,
    }
}

/// The length of the plain key starting `line` (`name: …`), if it has one. Quoted keys are left to the
/// string rule (a string followed by `:` is a key).
fn yaml_key_len(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    if bytes.first().is_none_or(|b| b"#\"'{[!&*|>%@`".contains(b)) {
        return None;
    }
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b':' if bytes
                .get(i + 1)
                .is_none_or(|n| matches!(n, b' ' | b'\t' | b'\r')) =>
            {
                let key = line[..i].trim_end();
                return (!key.is_empty()).then_some(key.len());
            }
            b'#' if matches!(bytes[i.saturating_sub(1)], b' ' | b'\t') => return None,
            _ => {}
        }
    }
    None
}

/// The length of the key before `=` starting `line`, quoted parts included.
fn toml_key_len(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'=' => {
                let key = line[..i].trim_end();
                return (!key.is_empty()).then_some(key.len());
            }
            b'"' | b'\'' => i += 2 + line[i + 1..].find(b as char)?,
            b'#' | b';' | b',' | b'[' | b']' | b'{' | b'}' => return None,
            _ => i += 1,
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------------------
// Markup, CSS, diffs

/// HTML and XML: tags, attributes, comments, entities; `<script>` and `<style>` bodies as JavaScript and CSS.
fn markup(code: &str) -> String {
    let mut cur = Cursor::new(code);
    while cur.pos < code.len() {
        let text = &code.as_bytes()[cur.pos..];
        let text_end = text
            .iter()
            .position(|&b| b == b'<' || b == b'&')
            .map_or(code.len(), |k| cur.pos + k);
        cur.skip(text_end);
        match cur.byte(cur.pos) {
            Some(b'<') => markup_tag(&mut cur),
            Some(b'&') => entity(&mut cur),
            _ => {}
        }
    }
    cur.finish()
}

fn entity(cur: &mut Cursor) {
    let name = cur
        .rest()
        .bytes()
        .skip(1)
        .take(32)
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'#'));
    match name {
        Some(len) if len > 0 && cur.byte(cur.pos + 1 + len) == Some(b';') => {
            cur.emit(Class::Lit, cur.pos + len + 2)
        }
        _ => cur.skip(cur.pos + 1),
    }
}

/// From a `<`: a comment, a declaration, or a tag with its attributes (and an embedded script or style).
fn markup_tag(cur: &mut Cursor) {
    let rest = cur.rest();
    let pos = cur.pos;
    if rest.starts_with("<!--") {
        return cur.emit(Class::Com, cur.past(pos + 4, "-->"));
    }
    if rest.starts_with("<![CDATA[") {
        return cur.emit(Class::Str, cur.past(pos + 9, "]]>"));
    }
    if rest.starts_with("<!") || rest.starts_with("<?") {
        return cur.emit(Class::Attr, cur.past(pos + 2, ">"));
    }
    let closing = rest.starts_with("</");
    let name_start = pos + 1 + usize::from(closing);
    if !cur
        .byte(name_start)
        .is_some_and(|b| b.is_ascii_alphabetic())
    {
        return cur.skip(pos + 1);
    }
    cur.skip(name_start);
    let name_len = cur.src.as_bytes()[name_start..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
        .count();
    let name = &cur.src[name_start..name_start + name_len];
    cur.emit(Class::Tag, name_start + name_len);
    let self_closed = attributes(cur);
    let embedded = match name.to_ascii_lowercase().as_str() {
        "script" => "js",
        "style" => "css",
        _ => return,
    };
    if !closing && self_closed == Some(false) {
        let end = close_tag(cur.rest(), name).map_or(cur.src.len(), |k| cur.pos + k);
        let html = highlight(embedded, &cur.src[cur.pos..end]).unwrap_or_default();
        cur.embed(end, &html);
    }
}

/// A tag's attributes up to its `>`: `Some(true)` when it ended with `/>`, `None` when it did not end.
fn attributes(cur: &mut Cursor) -> Option<bool> {
    let stop = |b: u8| b.is_ascii_whitespace() || b"=>/\"'<".contains(&b);
    loop {
        let pos = cur.pos;
        let rest = cur.rest().as_bytes();
        match *rest.first()? {
            b'>' => {
                cur.skip(pos + 1);
                return Some(pos > 0 && cur.byte(pos - 1) == Some(b'/'));
            }
            b'<' => return None,
            q @ (b'"' | b'\'') => {
                let end = cur.past(pos + 1, if q == b'"' { "\"" } else { "'" });
                cur.emit(Class::Str, end);
            }
            b'=' => {
                cur.skip(pos + 1);
                let value = &rest[1..];
                if value.first().is_some_and(|&b| !stop(b)) {
                    cur.emit(
                        Class::Str,
                        pos + 1 + value.iter().take_while(|&&b| !stop(b) || b == b'/').count(),
                    );
                }
            }
            b if b.is_ascii_whitespace() || b == b'/' => cur.skip(pos + 1),
            _ => cur.emit(
                Class::Attr,
                pos + rest.iter().take_while(|&&b| !stop(b)).count(),
            ),
        }
    }
}

/// Where `</name` starts in `text`, any case.
fn close_tag(text: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(k) = text.get(from..)?.find("</") {
        let at = from + k;
        let candidate = text.as_bytes().get(at + 2..at + 2 + name.len());
        if candidate.is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes())) {
            return Some(at);
        }
        from = at + 2;
    }
    None
}

/// CSS and SCSS: selectors (tags, `.classes`, `#ids`), property keys, values (numbers with units, colours),
/// at-rules, `!important`, functions, comments and strings.
fn css(code: &str, scss: bool) -> String {
    let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b >= 0x80;
    let word_end = |from: usize| {
        from + code.as_bytes()[from..]
            .iter()
            .take_while(|&&b| word_byte(b))
            .count()
    };
    let mut cur = Cursor::new(code);
    let (mut depth, mut parens) = (0usize, 0usize);
    // In a declaration's value (after `color:`); in an at-rule's prelude (`@media screen and`).
    let (mut in_value, mut prelude) = (false, false);
    while let Some(c) = cur.peek() {
        let pos = cur.pos;
        let rest = cur.rest();
        let next = cur.byte(pos + 1);
        let name_next = next.is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-');
        if rest.starts_with("/*") {
            cur.emit(Class::Com, cur.past(pos + 2, "*/"));
        } else if scss && rest.starts_with("//") && cur.prev_byte() != Some(b':') {
            cur.emit(Class::Com, cur.line_end());
        } else if c == '"' || c == '\'' {
            cur.emit(Class::Str, quoted_end(code, pos));
        } else if c == '@' && name_next {
            prelude = true;
            cur.emit(Class::Kw, word_end(pos + 1));
        } else if (c == '$' && scss && name_next)
            || (rest.starts_with("--") && cur.byte(pos + 2).is_some_and(word_byte))
        {
            cur.emit(Class::Var, word_end(pos + 1));
        } else if c == '#' && next.is_some_and(word_byte) {
            cur.emit(
                if in_value { Class::Num } else { Class::Ty },
                word_end(pos + 1),
            );
        } else if c == '.' && name_next && !in_value {
            cur.emit(Class::Ty, word_end(pos + 1));
        } else if c == '!'
            && rest
                .get(1..10)
                .is_some_and(|w| w.eq_ignore_ascii_case("important"))
        {
            cur.emit(Class::Kw, pos + 10);
        } else if c.is_ascii_digit()
            || (matches!(c, '.' | '-' | '+') && next.is_some_and(|b| b.is_ascii_digit()))
        {
            let len = rest
                .bytes()
                .skip(1)
                .take_while(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'%');
            cur.emit(Class::Num, pos + 1 + len.count());
        } else if c.is_alphabetic() || c == '_' || (c == '-' && name_next) {
            let end = word_end(pos);
            if cur.byte(end) == Some(b'(') {
                cur.emit(Class::Fn, end);
                if code[pos..end].eq_ignore_ascii_case("url")
                    && !matches!(cur.byte(end + 1), Some(b'"' | b'\''))
                {
                    cur.skip(end + 1);
                    let arg = code.as_bytes()[end + 1..]
                        .iter()
                        .take_while(|&&b| b != b')' && b != b'\n');
                    cur.emit(Class::Str, end + 1 + arg.count());
                }
            } else if (depth > 0 || parens > 0) && !in_value && cur.colon_follows(end) {
                cur.emit(Class::Key, end);
            } else if in_value || prelude || cur.prev_byte() == Some(b':') {
                cur.skip(end);
            } else {
                cur.emit(Class::Tag, end);
            }
        } else {
            match c {
                '{' | '}' | ';' => {
                    (in_value, prelude) = (false, false);
                    depth = match c {
                        '{' => depth + 1,
                        '}' => depth.saturating_sub(1),
                        _ => depth,
                    };
                }
                ':' if depth > 0 => in_value = true,
                '(' => parens += 1,
                ')' => parens = parens.saturating_sub(1),
                _ => {}
            }
            cur.skip_char();
        }
    }
    cur.finish()
}

/// Just past a one-line quoted string with backslash escapes starting at `start`.
fn quoted_end(code: &str, start: usize) -> usize {
    let bytes = code.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'\n' => return i,
            _ if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Unified diffs: added and removed lines, hunk headers, file headers.
fn diff(code: &str) -> String {
    let mut cur = Cursor::new(code);
    let mut lines = code.split_inclusive('\n').peekable();
    let mut new_file_header = false;
    while let Some(line) = lines.next() {
        let body = line.strip_suffix('\n').unwrap_or(line);
        // `--- a/file` is a header only when `+++ b/file` follows; otherwise it is a removed `-- …` line.
        let class = if std::mem::take(&mut new_file_header) {
            Some(Class::Kw)
        } else if body.starts_with("--- ")
            && lines.peek().is_some_and(|next| next.starts_with("+++ "))
        {
            new_file_header = true;
            Some(Class::Kw)
        } else if body.starts_with("diff ") || body.starts_with("index ") {
            Some(Class::Kw)
        } else if body.starts_with("@@") {
            Some(Class::Attr)
        } else {
            match body.as_bytes().first() {
                Some(b'+') => Some(Class::Add),
                Some(b'-') => Some(Class::Del),
                Some(b'\\') => Some(Class::Com),
                _ => None,
            }
        };
        let body_end = cur.pos + body.len();
        match class {
            Some(class) => cur.emit(class, body_end),
            None => cur.skip(body_end),
        }
        cur.skip(cur.pos + line.len() - body.len());
    }
    cur.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGS: &[&str] = words![rust rs python py javascript js jsx mjs typescript ts tsx json jsonc
        bash sh shell zsh console c h cpp cc hpp csharp cs java kotlin kt go golang swift ruby rb php
        sql yaml yml toml ini html xml svg css scss diff patch dockerfile lua];

    /// The spans of `html` as (class, text), checking on the way that it holds nothing but escaped text
    /// and unnested, non-empty spans of known classes, and that it is exactly `code` once unwrapped.
    fn spans(html: &str, code: &str) -> Vec<(String, String)> {
        let mut text = String::new();
        let mut found = Vec::new();
        let mut open: Option<(String, usize)> = None;
        let mut rest = html;
        while let Some(k) = rest.find('<') {
            text.push_str(&rest[..k]);
            rest = &rest[k..];
            if let Some(after) = rest.strip_prefix("</span>") {
                let (class, from) = open.take().expect("close without open");
                assert!(text.len() > from, "empty span in {html}");
                found.push((class, unescape(&text[from..])));
                rest = after;
            } else {
                let after = rest.strip_prefix("<span class=\"").expect("only spans");
                let (class, after) = after.split_once("\">").expect("class ends");
                assert!(CLASSES.contains(&class), "unknown class {class}");
                assert!(open.is_none(), "nested span in {html}");
                open = Some((class.to_owned(), text.len()));
                rest = after;
            }
        }
        text.push_str(rest);
        assert!(open.is_none(), "unclosed span in {html}");
        assert!(!text.contains(['>', '"', '\'']), "unescaped text in {html}");
        assert_eq!(unescape(&text), code, "text changed: {html}");
        found
    }

    fn unescape(text: &str) -> String {
        const ENTITIES: [(&str, char); 5] = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
        ];
        let mut out = String::new();
        let mut rest = text;
        while let Some(k) = rest.find('&') {
            out.push_str(&rest[..k]);
            rest = &rest[k..];
            let (entity, c) = ENTITIES
                .into_iter()
                .find(|(e, _)| rest.starts_with(e))
                .expect("entity");
            out.push(c);
            rest = &rest[entity.len()..];
        }
        out + rest
    }

    /// `text` is a token of class `hl-{class}`: alone in its span, or one word of a span of several.
    fn has(tokens: &[(String, String)], class: &str, text: &str) -> bool {
        let class = format!("hl-{class}");
        let is_text = |t: &String| t == text || t.split_whitespace().any(|w| w == text);
        tokens.iter().any(|(c, t)| *c == class && is_text(t))
    }

    /// Highlights `code` and checks `expected`: `class text` pairs separated by ` | `.
    fn check(lang: &str, code: &str, expected: &str) -> Vec<(String, String)> {
        let found = spans(&highlight(lang, code).expect(lang), code);
        for pair in expected.split(" | ") {
            let (class, text) = pair.trim_start().split_once(' ').expect("class and text");
            assert!(
                has(&found, class, text),
                "{lang}: {text:?} should be hl-{class} in {found:?}"
            );
        }
        found
    }

    #[test]
    fn classes_match_the_list() {
        use Class::*;
        let all = [
            Kw, Str, Com, Num, Lit, Ty, Fn, Attr, Tag, Var, Key, Add, Del,
        ];
        assert_eq!(all.map(Class::name).as_slice(), CLASSES);
    }

    #[test]
    fn languages_and_aliases() {
        let more = [
            "c++",
            "c#",
            "Rust",
            "PY",
            " JavaScript ",
            "rust,ignore",
            "py title=x",
            "Dockerfile",
        ];
        for lang in LANGS.iter().chain(&more) {
            assert!(highlight(lang, "x").is_some(), "{lang}");
        }
        for lang in ["", " ", "brainfuck", "rustacean", "text", "plaintext"] {
            assert_eq!(highlight(lang, "x"), None, "{lang}");
        }
    }

    #[test]
    fn rust() {
        let code = "#[derive(Debug)]\npub fn main() -> Result<String, ()> { // c\n    let s = \"x\";\n\
            let n = 42u8 + 0x1F; let r = r#\"raw \"q\"\"#; let c = '\\n'; let d = 'é';\n}\n\
            fn f<'a>(x: &'a str) -> Option<i32> { println!(\"{x}\"); None }\n/* a /* nested */ b */ end";
        let found = check(
            "rust",
            code,
            "attr #[derive(Debug)] | kw pub | kw fn | fn main | ty String \
            | com // c | str \"x\" | num 42u8 | num 0x1F | str r#\"raw \"q\"\"# | str '\\n' | str 'é' \
            | ty 'a | ty str | ty i32 | fn println! | lit None | com /* a /* nested */ b */ | fn f",
        );
        assert!(!has(&found, "com", "end"));
    }

    #[test]
    fn python() {
        let code = "@dataclass\nclass Point(Base):\n    \"\"\"doc\n    more\"\"\"\n    \
            def norm(self) -> float:  # c\n        return None if x else True\nprint('it', 1.5e-3)";
        check(
            "python",
            code,
            "attr @dataclass | kw class | ty Point | ty Base \
            | str \"\"\"doc\n    more\"\"\" | kw def | fn norm | ty float | com # c | lit None \
            | lit True | fn print | str 'it' | num 1.5e-3",
        );
    }

    #[test]
    fn javascript_and_typescript() {
        let code = "const greet = (name) => `Hello ${name}!\nline two`; // c\n\
            function add(a, b) { return a + b; }\nlet x = null, $el = $('#id');";
        check(
            "js",
            code,
            "kw const | str `Hello | var ${name} | str two` | com // c | kw function \
            | fn add | lit null | fn $ | str '#id'",
        );
        let code = "interface User { id: number; name?: string }\ntype Id = string;";
        check(
            "ts",
            code,
            "kw interface | ty User | ty number | ty string | kw type | ty Id",
        );
    }

    #[test]
    fn json_keys_are_not_values() {
        let code = r#"{"name": "x", "n" : -1.5, "ok": true, "nil": null, "list": ["a"]} // c"#;
        let found = check(
            "json",
            code,
            "key \"name\" | str \"x\" | key \"n\" | num 1.5 | lit true \
            | lit null | str \"a\" | com // c",
        );
        assert!(!has(&found, "str", "\"name\"") && !has(&found, "key", "\"x\""));
    }

    #[test]
    fn shell() {
        let code = "# comment\nexport PATH=\"$HOME/bin:${PATH}\"\necho a#b $1 'single $x' # trailing\n\
            if [ -f x ]; then echo ok; fi\ncurl --data=x";
        let found = check(
            "bash",
            code,
            "com # comment | kw export | var PATH | var $HOME \
            | var ${PATH} | fn echo | var $1 | str 'single $x' | com # trailing | kw if | kw then \
            | kw fi",
        );
        assert!(
            found
                .iter()
                .all(|(c, t)| c != "hl-com" || !t.contains("#b")),
            "{found:?}"
        );
        assert!(!has(&found, "var", "data"));
    }

    #[test]
    fn sql_keywords_ignore_case() {
        let code =
            "select id, COUNT(*) from users WHERE name = 'it''s' AND x IS NULL; -- c\nSELECT 1";
        check(
            "sql",
            code,
            "kw select | kw SELECT | kw from | kw WHERE | fn COUNT | lit NULL \
            | str 'it''s' | com -- c | num 1",
        );
    }

    #[test]
    fn markup() {
        let code = "<!DOCTYPE html>\n<div class=\"x\" hidden data-n=3>a &amp; b<!-- c --></div><br/>\n\
            <script>let a = 1 < 2; // </div>\n</script><style>p { color: red }</style>";
        check(
            "html",
            code,
            "attr <!DOCTYPE html> | tag div | attr class | str \"x\" | attr hidden \
            | str 3 | lit &amp; | com <!-- c --> | tag br | tag script | kw let | num 1 | com // </div> \
            | tag style | tag p | key color",
        );
        let code = "<?xml version=\"1.0\"?><a:b x='1'><![CDATA[<raw>]]></a:b>";
        check(
            "xml",
            code,
            "attr <?xml version=\"1.0\"?> | tag a:b | str '1' | str <![CDATA[<raw>]]>",
        );
    }

    #[test]
    fn css() {
        let code = ".btn:hover, #main > p { color: #fff; margin: 0 -4px !important; background: \
            url(a.png) }\n@media (max-width: 600px) { a { --gap: 1em; } } /* c */";
        check(
            "css",
            code,
            "ty .btn | ty #main | tag p | key color | num #fff | num -4px \
            | kw !important | fn url | str a.png | kw @media | key max-width | num 600px | var --gap \
            | com /* c */",
        );
        check(
            "scss",
            "$pad: 4px; // c\n.a { padding: $pad; }",
            "var $pad | com // c",
        );
    }

    #[test]
    fn diff() {
        let code = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n same\n-old\n+new\n\
            --- sql comment\n\\ No newline";
        check(
            "diff",
            code,
            "kw diff --git a/x b/x\n--- a/x\n+++ b/x | attr @@ -1,3 +1,3 @@ \
            | del -old | add +new | del --- sql comment | com \\ No newline",
        );
    }

    #[test]
    fn c_family() {
        let code =
            "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; } /* c */";
        check(
            "c",
            code,
            "attr #include <stdio.h> | ty int | fn main | ty void | fn printf \
            | str \"%d\\n\" | kw return | com /* c */",
        );
        let code = "template <typename T> class Box { public: T* p = nullptr; };";
        check(
            "cpp",
            code,
            "kw template | kw class | ty Box | ty T | lit nullptr",
        );
        let code = "#region x\npublic class Foo { public string Name { get; set; } = null; }";
        check(
            "cs",
            code,
            "attr #region x | kw public | ty Foo | ty string | lit null",
        );
        let code = "@Override\npublic String toString() { return \"x\"; }";
        check(
            "java",
            code,
            "attr @Override | ty String | fn toString | str \"x\"",
        );
        let code = "data class User(val name: String)\nfun main() { println(\"\"\"hi\"\"\") }";
        check(
            "kotlin",
            code,
            "kw val | kw fun | fn main | ty String | str \"\"\"hi\"\"\"",
        );
        let code = "func main() { fmt.Println(`raw\nline`); var x int = nil }";
        check(
            "go",
            code,
            "kw func | fn main | fn Println | str `raw\nline` | ty int | lit nil",
        );
        let code = "@State var count: Int = 0\nfunc inc() -> Int { return nil }";
        check(
            "swift",
            code,
            "attr @State | kw var | ty Int | fn inc | lit nil",
        );
    }

    #[test]
    fn scripting_languages() {
        let code = "def greet(name)\n  puts \"Hi #{name}\" # c\n  @count = :sym\nend";
        check(
            "ruby",
            code,
            "kw def | fn greet | fn puts | str \"Hi #{name}\" | com # c \
            | var @count | lit :sym | kw end",
        );
        let code =
            "<?php\n$name = \"World\"; echo \"Hi $name\"; // c\nfunction f() { return NULL; } ?>";
        check(
            "php",
            code,
            "attr <?php | var $name | kw echo | str \"Hi | kw function | fn f \
            | lit NULL | attr ?> | com // c",
        );
        let code = "local function f(x) -- c\n  return nil, [[long\n]]\nend --[[ block\n]]";
        check(
            "lua",
            code,
            "kw local | kw function | fn f | com -- c | lit nil | str [[long\n]] \
            | com --[[ block\n]]",
        );
        let code = "FROM rust:1.80 AS build\nRUN npm run x # c\nENV PATH=$PATH:/x";
        let found = check(
            "dockerfile",
            code,
            "kw FROM | kw AS | kw RUN | com # c | var $PATH",
        );
        assert!(!has(&found, "kw", "run"));
    }

    #[test]
    fn yaml() {
        let code = "# c\nname: my-app # trailing\nversion: 1.2\nenabled: true\nlist:\n  - key: \"v\"\n\
            \x20   ref: *base\nscript: |\n  echo: not a key\n\n  more\nother: x\n---\nurl: http://x";
        let found = check(
            "yaml",
            code,
            "com # c | key name | com # trailing | key version \
            | num 1.2 | lit true | key list | key key | str \"v\" | var *base | key script \
            | str echo: not a key\n\n  more | key other | kw ---",
        );
        assert!(!has(&found, "key", "echo") && !has(&found, "key", "http"));
    }

    #[test]
    fn toml_and_ini() {
        let code = "[package]\nname = \"x\" # c\nversion = 1\nlist = [\n  [1, 2],\n]\n[[bin]]\n\
            \"a b\".c = '''raw\n'''";
        let found = check(
            "toml",
            code,
            "ty [package] | key name | str \"x\" | com # c | num 1 \
            | ty [[bin]] | key \"a b\".c | str '''raw\n'''",
        );
        assert!(!found.iter().any(|(c, t)| c == "hl-ty" && t.contains("[1")));
        check("ini", "; c\n[s]\nk=v", "com ; c | ty [s] | key k");
    }

    /// Pieces of inputs built to break scanners: unclosed everything, every language's markers,
    /// multi-byte chars, HTML that must stay text.
    const NASTY: &[&str] = &[
        "",
        "\"",
        "'",
        "`",
        "\\",
        "\\\\\"",
        "/*",
        "*/",
        "<!--",
        "<",
        ">",
        "&",
        "&amp;",
        "r#\"",
        "</span><script>alert(1)</script>",
        "\"</span><script>\"",
        "r##\"x\"#",
        "b'",
        "'\\u{1F600",
        "'é",
        "é'",
        "${",
        "${${",
        "$",
        "$(",
        "#[",
        "#![",
        "@",
        "@é",
        "<?php",
        "?>",
        "--[[",
        "[[",
        "\"\"\"",
        "'''",
        "é\"é\\é",
        "日本語 🦀 \"🦀\" '🦀' `🦀`",
        "a\r\nb\r\n",
        "\0\u{1}\u{7f}",
        "<a href='x",
        "<script>",
        "<style>p{",
        "@@",
        "+++ ",
        "--- ",
        "key: |\n  x",
        "[",
        "[x",
        "= v",
        "\"a\" : ",
        "#include",
        "1e",
        "0x",
        ".5",
        "1..2",
        "x.0",
        "'a'b'c'",
        ":sym",
        "@@x",
        "&x *y",
        "url(",
        "!important",
        "--x",
        "#fff",
        "&#",
        "&#123456789012345678901234567890123;",
    ];

    /// The pieces alone, together, and in a fixed pseudo-random mix (so failures reproduce).
    fn samples() -> Vec<String> {
        let mut samples: Vec<String> = NASTY.iter().map(|s| (*s).to_owned()).collect();
        samples.push(NASTY.concat());
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..400 {
            let mut s = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(NASTY[(seed % NASTY.len() as u64) as usize]);
                if seed.is_multiple_of(5) {
                    s.push([' ', '\n', 'a', '9', 'ß'][(seed % 7 % 5) as usize]);
                }
            }
            samples.push(s);
        }
        samples
    }

    #[test]
    fn any_input_round_trips_as_escaped_text_in_spans() {
        for lang in LANGS {
            for code in samples() {
                let html = highlight(lang, &code).expect(lang);
                spans(&html, &code);
                // The most a byte can cost: a span of its own (29 bytes) around `&quot;` (6).
                assert!(
                    html.len() <= 35 * code.len(),
                    "{lang}: {} bytes for {code:?}",
                    html.len()
                );
            }
        }
    }

    #[test]
    fn big_pathological_inputs_take_linear_time_and_bounded_space() {
        let started = std::time::Instant::now();
        let inputs = [
            "\"".repeat(200_000),
            "'".repeat(200_000),
            "/*".repeat(100_000),
            "\\".repeat(200_000),
            "${".repeat(100_000),
            "<!--".repeat(50_000),
            "r#".repeat(100_000),
            "\"a\" ".repeat(50_000),
            "é'".repeat(70_000),
        ];
        for code in &inputs {
            for lang in words![rust python js json bash sql yaml toml html css diff] {
                let html = highlight(lang, code).expect(lang);
                assert!(
                    html.len() <= 12 * code.len(),
                    "{lang}: {} for {}",
                    html.len(),
                    code.len()
                );
            }
        }
        // A megabyte of mixed code in every language.
        let unit = samples().concat();
        let code = unit.repeat(1_000_000 / unit.len() + 1);
        for lang in words![rust py js ts json sh c cpp cs java kt go swift rb php sql yaml toml html css
            scss diff dockerfile lua]
        {
            let html = highlight(lang, &code).expect(lang);
            assert!(html.len() <= 35 * code.len());
        }
        // Generous for unoptimised test builds; quadratic behaviour would take minutes.
        assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    }
}
