//! Message markdown: a safe subset rendered on the server (pulldown-cmark) and sanitized (ammonia).
//!
//! Two layers, each sufficient on its own for the things it owns:
//!
//! 1. Our own HTML writer walks pulldown-cmark's events and can only ever emit the subset's
//!    tags. Every piece of user text, raw HTML included, goes through an escaper; link targets
//!    must parse (WHATWG URL parser, as browsers do) with an http, https or mailto scheme.
//! 2. ammonia re-parses that HTML with a browser-grade parser and enforces the same allow list,
//!    so a bug in layer 1 cannot turn into markup the browser would execute.
//!
//! Decisions worth knowing:
//! - Relative URLs: user-written links must be absolute (`[x](/path)` renders as plain text),
//!   so the only relative URLs we emit are mention links `/u/<username>`. ammonia's relative-URL
//!   hook accepts exactly that shape and nothing else; a leading `/u/` followed by username
//!   characters can never be a scheme (`javascript:`) nor protocol-relative (`//host`).
//! - Bidi controls (U+202A–U+202E, U+2066–U+2069) are removed from the whole output, code
//!   included: inside code is exactly where "Trojan Source" reordering fools reviewers, and they
//!   can also arrive via entities (`&#x202E;`), so the output rather than the source is filtered.
//!   The stored source keeps them; editing shows what was typed. LRM/RLM marks are harmless and kept.
//! - Headings are not part of the subset but `# text` should not lose text: a heading renders
//!   as a paragraph in `<strong>`. A thematic break renders its source (`---`) as a paragraph.
//! - Images never load (no tracking pixels, no layout abuse): `![alt](url)` becomes a link to the
//!   URL labelled with the alt text, or just the alt text when the URL is not allowed.
//! - Nesting is capped (`MAX_DEPTH`): deeper containers and spans are dropped, their text kept,
//!   which bounds the work ammonia/html5ever do on pathological input like 10 000 `>`.
//! - No whitespace between tags, so the result looks the same whatever `white-space` the
//!   stylesheet uses for message bodies.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::{Builder, Url, UrlRelative};
use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    pub html: String,
    pub mentions: Vec<String>,
}

/// Deepest element nesting we emit. Real messages stay far below; beyond it tags are dropped.
const MAX_DEPTH: usize = 32;

const LINK_REL: &str = "noopener nofollow ugc";

static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut builder = Builder::empty();
    builder
        .tags(HashSet::from(["p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a"]))
        // The defaults allow `lang` and `title` everywhere; we emit neither.
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([
            ("a", HashSet::from(["href", "class", "data-user"])),
            ("code", HashSet::from(["class"])),
            ("ol", HashSet::from(["start"])),
        ]))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(UrlRelative::Custom(Box::new(mention_path_only)))
        .link_rel(Some(LINK_REL))
        .attribute_filter(filter_attribute)
        .strip_comments(true);
    builder
});

/// The only relative URL we ever emit is a mention link, so that is the only one let through.
fn mention_path_only(url: &str) -> Option<Cow<'_, str>> {
    let name = url.strip_prefix("/u/")?;
    is_username(name).then_some(Cow::Borrowed(url))
}

/// Values, not just names: `class` on a link must not let users restyle text as a mention, and
/// numbers/languages are checked so an attribute can never carry anything else.
fn filter_attribute<'u>(element: &str, attribute: &str, value: &'u str) -> Option<Cow<'u, str>> {
    let keep = match (element, attribute) {
        ("a", "href") | ("a", "rel") => true,
        ("a", "class") => value == "mention",
        ("a", "data-user") => is_username(value),
        ("code", "class") => value.strip_prefix("language-").is_some_and(is_code_language),
        ("ol", "start") => (1..=9).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    };
    keep.then_some(Cow::Borrowed(value))
}

fn is_username(name: &str) -> bool {
    (2..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

fn is_code_language(lang: &str) -> bool {
    (1..=32).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'#' | b'.' | b'-'))
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn options() -> Options {
    // Everything else (tables, footnotes, task lists, math, heading attributes…) stays off.
    Options::ENABLE_STRIKETHROUGH
}

/// Renders a message source to sanitized HTML and lists the accounts it mentions.
///
/// `is_user(name)` says whether `@name` names an existing account (lower-case usernames: 2–32 chars of a-z 0-9 _ .).
pub fn render(source: &str, is_user: &dyn Fn(&str) -> bool) -> Rendered {
    let mut writer = Writer {
        html: String::with_capacity(source.len() + source.len() / 2 + 16),
        text: String::new(),
        mentions: Vec::new(),
        is_user,
        stack: Vec::new(),
        in_link: 0,
        in_code_block: false,
    };
    for (event, range) in Parser::new_ext(source, options()).into_offset_iter() {
        writer.event(event, source.get(range).unwrap_or(""));
    }
    writer.flush_text();
    let clean = SANITIZER.clean(&writer.html).to_string();
    let clean = clean.trim_end_matches('\n');
    let html = if clean.contains(is_bidi_control) {
        clean.chars().filter(|&c| !is_bidi_control(c)).collect()
    } else {
        clean.to_owned()
    };
    Rendered { html, mentions: writer.mentions }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Other,
    Link,
    CodeBlock,
    HtmlBlock,
}

struct Open {
    /// `None` when the start tag was not written (over-deep, or an unsafe link).
    close: Option<&'static str>,
    kind: Kind,
    /// For links: what to show when the link has no text of its own, and where its text starts.
    fallback: Option<(usize, String)>,
}

struct Writer<'a> {
    html: String,
    /// Adjacent text events (pulldown-cmark splits at `[`, entities, escapes…) are joined here
    /// so URLs and mentions are found whole.
    text: String,
    mentions: Vec<String>,
    is_user: &'a dyn Fn(&str) -> bool,
    stack: Vec<Open>,
    in_link: usize,
    in_code_block: bool,
}

impl Writer<'_> {
    fn event(&mut self, event: Event<'_>, source: &str) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(_) => self.end(),
            // Raw HTML is shown as the text the user typed.
            Event::Text(text)
            | Event::Html(text)
            | Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.text.push_str(&text),
            Event::Code(code) => {
                self.flush_text();
                self.html.push_str("<code>");
                escape_text(&mut self.html, &code, false);
                self.html.push_str("</code>");
            }
            // Chat users expect Enter to start a new line, not to be folded into a space.
            Event::SoftBreak | Event::HardBreak => {
                self.flush_text();
                self.html.push_str("<br>");
            }
            Event::Rule => {
                self.flush_text();
                self.html.push_str("<p>");
                escape_text(&mut self.html, source.trim(), false);
                self.html.push_str("</p>");
            }
            Event::FootnoteReference(text) => self.text.push_str(&text),
            Event::TaskListMarker(done) => self.text.push_str(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        self.flush_text();
        let room = self.stack.len() < MAX_DEPTH;
        let mut kind = Kind::Other;
        let mut fallback = None;
        let close = match tag {
            Tag::Paragraph => self.open(room, "<p>", "</p>"),
            Tag::Heading { .. } => self.open(room, "<p><strong>", "</strong></p>"),
            Tag::BlockQuote(_) => self.open(room, "<blockquote>", "</blockquote>"),
            Tag::CodeBlock(block) => {
                kind = Kind::CodeBlock;
                self.in_code_block = true;
                let lang = match &block {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().filter(|l| is_code_language(l)),
                    CodeBlockKind::Indented => None,
                };
                if room {
                    self.html.push_str("<pre><code");
                    if let Some(lang) = lang {
                        self.html.push_str(" class=\"language-");
                        self.html.push_str(lang);
                        self.html.push('"');
                    }
                    self.html.push('>');
                    Some("</code></pre>")
                } else {
                    None
                }
            }
            Tag::HtmlBlock => {
                kind = Kind::HtmlBlock;
                self.open(room, "<p>", "</p>")
            }
            Tag::List(None) => self.open(room, "<ul>", "</ul>"),
            Tag::List(Some(1)) => self.open(room, "<ol>", "</ol>"),
            Tag::List(Some(start)) => {
                if room {
                    self.html.push_str("<ol start=\"");
                    self.html.push_str(&start.to_string());
                    self.html.push_str("\">");
                    Some("</ol>")
                } else {
                    None
                }
            }
            Tag::Item => self.open(room, "<li>", "</li>"),
            Tag::Emphasis => self.open(room, "<em>", "</em>"),
            Tag::Strong => self.open(room, "<strong>", "</strong>"),
            Tag::Strikethrough => self.open(room, "<del>", "</del>"),
            Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. } => {
                kind = Kind::Link;
                // Links cannot nest (an image inside a link's text would), and html5ever would
                // restructure nested anchors anyway.
                let href = if room && self.in_link == 0 { safe_href(link_type, &dest_url) } else { None };
                self.in_link += 1;
                match href {
                    Some(href) => {
                        self.html.push_str("<a href=\"");
                        escape_attribute(&mut self.html, &href);
                        self.html.push_str("\">");
                        let mut shown = String::new();
                        escape_text(&mut shown, &dest_url, false);
                        fallback = Some((self.html.len(), shown));
                        Some("</a>")
                    }
                    None => None,
                }
            }
            // Only reachable if more options get enabled; keep the text, drop the structure.
            _ => None,
        };
        self.stack.push(Open { close, kind, fallback });
    }

    fn open(&mut self, room: bool, open: &str, close: &'static str) -> Option<&'static str> {
        room.then(|| {
            self.html.push_str(open);
            close
        })
    }

    fn end(&mut self) {
        let Some(open) = self.stack.pop() else { return };
        match open.kind {
            Kind::HtmlBlock => {
                let trimmed = self.text.trim_end_matches('\n').len();
                self.text.truncate(trimmed);
            }
            Kind::CodeBlock => {
                // The block's own final newline would only add a blank line at the bottom.
                let trimmed = self.text.trim_end_matches('\n').len();
                self.text.truncate(trimmed);
                // Flushed here while still marked as code.
                self.flush_text();
                self.in_code_block = false;
            }
            _ => {}
        }
        self.flush_text();
        if open.kind == Kind::Link {
            self.in_link -= 1;
            if let Some((text_start, shown)) = open.fallback
                && self.html.len() == text_start
            {
                self.html.push_str(&shown);
            }
        }
        if let Some(close) = open.close {
            self.html.push_str(close);
        }
    }

    fn flush_text(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        if self.in_code_block {
            escape_text(&mut self.html, &text, false);
        } else if self.in_link > 0 {
            escape_text(&mut self.html, &text, true);
        } else {
            self.link_text(&text);
        }
        // Hand the allocation back for the next run of text.
        self.text = text;
        self.text.clear();
    }

    /// Plain prose: bare URLs and known `@names` become links, the rest is escaped.
    fn link_text(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut written = 0;
        let mut i = 0;
        while i < bytes.len() {
            let found = match bytes[i] {
                b'@' => self.mention_at(text, i).map(|end| (end, None)).ok_or(i + 1),
                b'h' | b'H' => bare_url_at(text, i).map(|(end, url)| (end, Some(url))),
                _ => Err(i + 1),
            };
            let (end, url) = match found {
                Ok(found) => found,
                Err(resume) => {
                    i = resume;
                    continue;
                }
            };
            escape_text(&mut self.html, &text[written..i], true);
            if let Some(url) = url {
                self.html.push_str("<a href=\"");
                escape_attribute(&mut self.html, url.as_str());
                self.html.push_str("\">");
                escape_text(&mut self.html, &text[i..end], false);
                self.html.push_str("</a>");
            } else {
                let name = text[i + 1..end].to_ascii_lowercase();
                self.html.push_str("<a href=\"/u/");
                self.html.push_str(&name);
                self.html.push_str("\" class=\"mention\" data-user=\"");
                self.html.push_str(&name);
                self.html.push_str("\">@");
                self.html.push_str(&name);
                self.html.push_str("</a>");
                if !self.mentions.contains(&name) {
                    self.mentions.push(name);
                }
            }
            written = end;
            i = end;
        }
        escape_text(&mut self.html, &text[written..], true);
    }

    /// End of `@name` at byte `at` if it mentions an existing account.
    fn mention_at(&self, text: &str, at: usize) -> Option<usize> {
        // `bob@example.org`, `example.org/@bob`, `@@bob` are not mentions.
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | '@' | '/'))
        {
            return None;
        }
        let rest = &text[at + 1..];
        // Runs never contain `@`, so each `@` scans its own stretch: linear overall.
        let run = rest.bytes().take_while(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.').count();
        // "thanks @bob." — the full stop ends the sentence, not the name.
        let name = rest[..run].trim_end_matches('.');
        if rest[name.len()..].chars().next().is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '@') {
            return None;
        }
        if !(2..=32).contains(&name.len()) || !(self.is_user)(&name.to_ascii_lowercase()) {
            return None;
        }
        Some(at + 1 + name.len())
    }
}

/// Where a bare `http(s)://…` URL starting at byte `at` ends (trailing punctuation excluded)
/// and what it parses to, or `Err(resume)`: where to look for the next candidate. Skipping a rejected candidate whole
/// keeps scanning linear; otherwise `x](https://…` repeated would rescan the rest every time.
fn bare_url_at(text: &str, at: usize) -> Result<(usize, Url), usize> {
    let rest = &text[at..];
    let scheme = if starts_with_ignore_case(rest, "https://") {
        8
    } else if starts_with_ignore_case(rest, "http://") {
        7
    } else {
        return Err(at + 1);
    };
    if text[..at].chars().next_back().is_some_and(char::is_alphanumeric) {
        return Err(at + 1);
    }
    let len = rest
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || c.is_control() || is_bidi_control(c) || matches!(c, '<' | '>' | '"' | '`'))
        .map_or(rest.len(), |(i, _)| i);
    let mut url = &rest[..len];
    let count = |b: u8| url.bytes().filter(|&c| c == b).count();
    let (open_parens, open_brackets) = (count(b'('), count(b'['));
    let (mut close_parens, mut close_brackets) = (count(b')'), count(b']'));
    loop {
        let trim = match url.as_bytes().last() {
            Some(b'.' | b',' | b':' | b';' | b'!' | b'?' | b'\'' | b'*' | b'_' | b'~') => true,
            // Wikipedia-style `(…)` stays when balanced: `…/Rust_(programming_language)`.
            Some(b')') if close_parens > open_parens => {
                close_parens -= 1;
                true
            }
            Some(b']') if close_brackets > open_brackets => {
                close_brackets -= 1;
                true
            }
            _ => false,
        };
        if !trim {
            break;
        }
        url = &url[..url.len() - 1];
    }
    let skip = Err(at + len.max(1));
    if !url[scheme.min(url.len())..].chars().next().is_some_and(char::is_alphanumeric) {
        return skip;
    }
    // The href is the parser's serialization (punycode host, percent-encoding), the text what was typed.
    Url::parse(url).map(|parsed| (at + url.len(), parsed)).or(skip)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The href for a user-written link, or `None` to render its text unlinked. Parsing with the
/// WHATWG parser sees the scheme the way a browser will (`JaVaScRiPt:`, `java\tscript:`,
/// leading controls), and its serialization is what we emit, so there is nothing left to reinterpret.
fn safe_href(link_type: LinkType, dest: &str) -> Option<String> {
    let url =
        if link_type == LinkType::Email { Url::parse(&format!("mailto:{dest}")) } else { Url::parse(dest) }.ok()?;
    matches!(url.scheme(), "http" | "https" | "mailto").then(|| url.into())
}

fn escape_text(out: &mut String, text: &str, line_breaks: bool) {
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let replacement = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            // Only raw-HTML text can still contain newlines here; they were the user's lines.
            b'\n' if line_breaks => "<br>",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        out.push_str(replacement);
        start = i + 1;
    }
    out.push_str(&text[start..]);
}

fn escape_attribute(out: &mut String, value: &str) {
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        let replacement = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&value[start..i]);
        out.push_str(replacement);
        start = i + 1;
    }
    out.push_str(&value[start..]);
}

/// Plain-text one-line excerpt of a message source for previews (sidebar, reply quotes): markdown markers stripped where cheap, whitespace collapsed, at most `max_chars` characters with "…" when cut.
pub fn excerpt(source: &str, max_chars: usize) -> String {
    if max_chars == 0 {
        return String::new();
    }
    // pulldown-cmark parses all blocks up front; a preview never needs more than the start.
    let limit = 4096 + max_chars.saturating_mul(8);
    let source = if source.len() > limit {
        let mut cut = limit;
        while !source.is_char_boundary(cut) {
            cut -= 1;
        }
        &source[..cut]
    } else {
        source
    };

    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    let mut push = |piece: &str, out: &mut String| -> bool {
        for c in piece.chars() {
            if c.is_whitespace() || c.is_control() {
                space = true;
            } else if !is_bidi_control(c) {
                if space && !out.is_empty() {
                    out.push(' ');
                    count += 1;
                }
                space = false;
                out.push(c);
                count += 1;
                if count > max_chars {
                    return false;
                }
            }
        }
        true
    };
    for event in Parser::new_ext(source, options()) {
        let more = match event {
            Event::Text(text)
            | Event::Code(text)
            | Event::Html(text)
            | Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => push(&text, &mut out),
            // Inline markup sits inside a line: "at **noon**, Bob" stays "at noon, Bob".
            Event::Start(Tag::Emphasis | Tag::Strong | Tag::Strikethrough | Tag::Superscript | Tag::Subscript | Tag::Link { .. })
            | Event::End(TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough | TagEnd::Superscript | TagEnd::Subscript | TagEnd::Link) => true,
            Event::Start(_) | Event::End(_) | Event::SoftBreak | Event::HardBreak | Event::Rule => push(" ", &mut out),
            _ => true,
        };
        if !more {
            break;
        }
    }
    if count <= max_chars {
        return out;
    }
    let mut cut: String = out.chars().take(max_chars - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
