//! The renderer as people type: markup, mentions, links, and what must never get through.

use super::*;

fn users(name: &str) -> bool {
    matches!(name, "alice" | "bob" | "carol.d" | "x_y")
}

fn md(source: &str) -> String {
    render(source, &users).html
}

#[test]
fn paragraphs_and_breaks() {
    assert_eq!(md("hello"), "<p>hello</p>");
    assert_eq!(md("a\nb"), "<p>a<br>b</p>");
    assert_eq!(md("a  \nb"), "<p>a<br>b</p>");
    assert_eq!(md("a\n\nb"), "<p>a</p><p>b</p>");
    assert_eq!(md(""), "");
    assert_eq!(md("   \n\n  "), "");
}

#[test]
fn inline_formatting() {
    assert_eq!(md("**a**"), "<p><strong>a</strong></p>");
    assert_eq!(md("*a* _b_"), "<p><em>a</em> <em>b</em></p>");
    assert_eq!(md("~~gone~~"), "<p><del>gone</del></p>");
    assert_eq!(md("`x < y`"), "<p><code>x &lt; y</code></p>");
    assert_eq!(md("***both***"), "<p><em><strong>both</strong></em></p>");
}

#[test]
fn code_blocks() {
    assert_eq!(md("```rust\nfn main() {}\n```"), "<pre><code class=\"language-rust\">fn main() {}</code></pre>");
    assert_eq!(md("```\n<b>&\n```"), "<pre><code>&lt;b&gt;&amp;</code></pre>");
    // A language that is not a plain identifier is dropped, not escaped into the class.
    assert_eq!(md("```\"onclick=x\nhi\n```"), "<pre><code>hi</code></pre>");
    assert_eq!(md("    indented"), "<pre><code>indented</code></pre>");
    // No links or mentions inside code.
    assert_eq!(md("```\nhttps://x.org @bob\n```"), "<pre><code>https://x.org @bob</code></pre>");
}

#[test]
fn quotes_and_lists() {
    assert_eq!(md("> quoted"), "<blockquote><p>quoted</p></blockquote>");
    assert_eq!(md("- a\n- b"), "<ul><li>a</li><li>b</li></ul>");
    assert_eq!(md("1. a\n2. b"), "<ol><li>a</li><li>b</li></ol>");
    assert_eq!(md("3. c\n4. d"), "<ol start=\"3\"><li>c</li><li>d</li></ol>");
    assert_eq!(md("- a\n  - b"), "<ul><li>a<ul><li>b</li></ul></li></ul>");
}

#[test]
fn links() {
    assert_eq!(
        md("[site](https://example.org/a?b=1&c=2)"),
        "<p><a href=\"https://example.org/a?b=1&amp;c=2\" rel=\"noopener nofollow ugc\">site</a></p>"
    );
    assert_eq!(
        md("<https://example.org>"),
        "<p><a href=\"https://example.org/\" rel=\"noopener nofollow ugc\">https://example.org</a></p>"
    );
    assert_eq!(
        md("<me@example.org>"),
        "<p><a href=\"mailto:me@example.org\" rel=\"noopener nofollow ugc\">me@example.org</a></p>"
    );
    assert_eq!(
        md("[mail](mailto:me@example.org)"),
        "<p><a href=\"mailto:me@example.org\" rel=\"noopener nofollow ugc\">mail</a></p>"
    );
    // Titles are not rendered.
    assert_eq!(
        md("[a](https://x.org \"t\")"),
        "<p><a href=\"https://x.org/\" rel=\"noopener nofollow ugc\">a</a></p>"
    );
    // Disallowed or relative targets keep the text only.
    assert_eq!(md("[x](javascript:alert(1))"), "<p>x</p>");
    assert_eq!(md("[x](/settings)"), "<p>x</p>");
    assert_eq!(md("[x](#top)"), "<p>x</p>");
    // An empty label shows the URL rather than an invisible link.
    assert_eq!(
        md("[](https://x.org)"),
        "<p><a href=\"https://x.org/\" rel=\"noopener nofollow ugc\">https://x.org</a></p>"
    );
}

#[test]
fn headings_become_strong_paragraphs() {
    assert_eq!(md("# Title"), "<p><strong>Title</strong></p>");
    assert_eq!(md("Title\n==="), "<p><strong>Title</strong></p>");
    assert_eq!(md("### *x*"), "<p><strong><em>x</em></strong></p>");
}

#[test]
fn rules_show_their_source() {
    assert_eq!(md("a\n\n---\n\nb"), "<p>a</p><p>---</p><p>b</p>");
}

#[test]
fn images_become_links() {
    assert_eq!(
        md("![a cat](https://x.org/cat.png)"),
        "<p><a href=\"https://x.org/cat.png\" rel=\"noopener nofollow ugc\">a cat</a></p>"
    );
    assert_eq!(
        md("![](https://x.org/cat.png)"),
        "<p><a href=\"https://x.org/cat.png\" rel=\"noopener nofollow ugc\">https://x.org/cat.png</a></p>"
    );
    assert_eq!(md("![a cat](javascript:alert(1))"), "<p>a cat</p>");
    assert_eq!(md("![a cat](cat.png)"), "<p>a cat</p>");
    // Inside a link the image cannot be a second link.
    assert_eq!(
        md("[![a](https://x.org/i.png)](https://y.org)"),
        "<p><a href=\"https://y.org/\" rel=\"noopener nofollow ugc\">a</a></p>"
    );
}

#[test]
fn raw_html_is_text() {
    assert_eq!(md("<b>hi</b>"), "<p>&lt;b&gt;hi&lt;/b&gt;</p>");
    assert_eq!(md("a <b>hi</b> c"), "<p>a &lt;b&gt;hi&lt;/b&gt; c</p>");
    assert_eq!(md("<div>\nx\n</div>"), "<p>&lt;div&gt;<br>x<br>&lt;/div&gt;</p>");
    assert_eq!(md("<!-- c -->"), "<p>&lt;!-- c --&gt;</p>");
    assert_eq!(md("&lt;b&gt;"), "<p>&lt;b&gt;</p>");
}

#[test]
fn disabled_extensions_stay_text() {
    assert_eq!(md("| a | b |\n|---|---|\n| 1 | 2 |"), "<p>| a | b |<br>|---|---|<br>| 1 | 2 |</p>");
    assert_eq!(md("- [ ] task"), "<ul><li>[ ] task</li></ul>");
    assert_eq!(md("a[^1]"), "<p>a[^1]</p>");
}

fn mention(name: &str) -> String {
    format!(
        "<a href=\"/u/{name}\" class=\"mention\" data-user=\"{name}\" rel=\"noopener nofollow ugc\">@{name}</a>"
    )
}

#[test]
fn mentions_known_and_unknown() {
    let r = render("hi @alice and @nobody", &users);
    assert_eq!(r.html, format!("<p>hi {} and @nobody</p>", mention("alice")));
    assert_eq!(r.mentions, vec!["alice"]);
}

#[test]
fn mentions_are_case_insensitive_deduplicated_and_ordered() {
    let r = render("@Bob, @alice! @BOB @bob. (@alice)", &users);
    assert_eq!(r.html, format!("<p>{b}, {a}! {b} {b}. ({a})</p>", a = mention("alice"), b = mention("bob")));
    assert_eq!(r.mentions, vec!["bob", "alice"]);
}

#[test]
fn mention_names_with_dots_and_underscores() {
    let r = render("@carol.d. @x_y's", &users);
    assert_eq!(r.html, format!("<p>{}. {}'s</p>", mention("carol.d"), mention("x_y")));
    assert_eq!(r.mentions, vec!["carol.d", "x_y"]);
}

#[test]
fn emails_and_lookalikes_are_not_mentions() {
    for source in [
        "alice@bob.org",
        "write to bob@example.org",
        "x.@bob",
        "example.org/@bob",
        "@@bob",
        "@bob@example.org",
        "@bobby",
        "@bob-smith",
        "@bobé",
        "@b",
        "@",
        "\\@bo b",
    ] {
        let r = render(source, &users);
        assert!(r.mentions.is_empty(), "{source:?} → {r:?}");
        assert!(!r.html.contains("mention"), "{source:?} → {r:?}");
    }
}

#[test]
fn mentions_not_in_code_or_links() {
    let r = render("`@bob`\n\n```\n@alice\n```\n\n[@bob](https://x.org) <https://x.org/@bob>", &users);
    assert!(r.mentions.is_empty(), "{r:?}");
    assert!(!r.html.contains("class=\"mention\""), "{r:?}");
    assert!(r.html.contains("<code>@bob</code>"));
}

#[test]
fn mentions_in_formatting_and_quotes() {
    let r = render("> **@alice** said\n- @bob", &users);
    assert_eq!(
        r.html,
        format!(
            "<blockquote><p><strong>{}</strong> said</p></blockquote><ul><li>{}</li></ul>",
            mention("alice"),
            mention("bob")
        )
    );
    assert_eq!(r.mentions, vec!["alice", "bob"]);
}

#[test]
fn is_user_gets_lowercase_names() {
    let seen = std::cell::RefCell::new(Vec::new());
    render("@MiXeD @Other_One.", &|name: &str| {
        seen.borrow_mut().push(name.to_owned());
        false
    });
    assert_eq!(*seen.borrow(), vec!["mixed", "other_one"]);
}

fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{href}\" rel=\"noopener nofollow ugc\">{text}</a>")
}

#[test]
fn bare_urls() {
    assert_eq!(
        md("see https://example.org/path?q=1"),
        format!("<p>see {}</p>", link("https://example.org/path?q=1", "https://example.org/path?q=1"))
    );
    for (source, url, after) in [
        ("https://example.org.", "https://example.org", "."),
        ("https://example.org/a,", "https://example.org/a", ","),
        ("https://example.org/a!", "https://example.org/a", "!"),
        ("https://example.org/a?", "https://example.org/a", "?"),
        ("https://example.org/a:", "https://example.org/a", ":"),
        ("https://example.org/a...", "https://example.org/a", "..."),
        ("https://example.org/a).", "https://example.org/a", ")."),
    ] {
        let href = Url::parse(url).unwrap().to_string();
        assert_eq!(md(source), format!("<p>{}{after}</p>", link(&href, url)), "{source}");
    }
    assert_eq!(
        md("(see https://example.org/a)"),
        format!("<p>(see {})</p>", link("https://example.org/a", "https://example.org/a"))
    );
    let wiki = "https://en.wikipedia.org/wiki/Rust_(programming_language)";
    assert_eq!(md(&format!("{wiki}.")), format!("<p>{}.</p>", link(wiki, wiki)));
    assert_eq!(
        md("HTTP://Example.org/X and http://a.b"),
        format!(
            "<p>{} and {}</p>",
            link("http://example.org/X", "HTTP://Example.org/X"),
            link("http://a.b/", "http://a.b")
        )
    );
    assert_eq!(
        md("q https://x.org/?a=1&b=\"2\""),
        // `"` ends a bare URL: in prose it is far more often a closing quote.
        format!("<p>q {}\"2\"</p>", link("https://x.org/?a=1&amp;b=", "https://x.org/?a=1&amp;b="))
    );
}

#[test]
fn bare_url_lookalikes_stay_text() {
    for source in ["https://", "https://.", "xhttps://x.org", "ftp://x.org", "javascript:alert(1)", "http:// x"] {
        assert!(!md(source).contains("<a"), "{source}: {}", md(source));
    }
}

#[test]
fn bare_url_non_ascii_host_is_punycoded_in_href() {
    assert_eq!(
        md("https://bücher.example/ä"),
        format!("<p>{}</p>", link("https://xn--bcher-kva.example/%C3%A4", "https://bücher.example/ä"))
    );
}

#[test]
fn bidi_controls_removed_everywhere() {
    let html = md("a\u{202e}b `c\u{2066}d` &#x202E; [x](https://x.org/\u{202e}y)\n```\n\u{2069}e\n```");
    assert!(!html.contains(is_bidi_control), "{html}");
    assert!(html.contains("ab"));
    assert!(html.contains("<code>cd</code>"));
}

#[test]
fn output_is_deterministic() {
    let source = "**a** @alice https://x.org [b](https://y.org) <i>\n> q\n- l";
    let first = md(source);
    for _ in 0..20 {
        assert_eq!(md(source), first);
    }
}

// ---- hostile input -------------------------------------------------------------------

const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT>alert(1)</SCRIPT>",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<script src=https://evil.example/x.js></script>",
    "<script\n>alert(1)</script\n>",
    "<script/x>alert(1)</script>",
    "<script type=\"text/javascript\">alert(1)</script>",
    "\n\n<script>alert(1)</script>\n\n",
    "text <script>alert(1)</script> text",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<<script>>alert(1)<</script>>",
    "<script>alert(1)",
    "<script",
    "<script>",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "&#x3c;script&#x3e;alert(1)",
    "\\<script>alert(1)\\</script>",
    "`<script>`alert(1)",
    "```html\n<script>alert(1)</script>\n```",
    "    <script>alert(1)</script>",
    "> <script>alert(1)</script>",
    "- <script>alert(1)</script>",
    "**<script>alert(1)</script>**",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=x ONERROR=alert(1)>",
    "<img src=\"x\" onerror=\"alert(1)\"/>",
    "<img/src=x/onerror=alert(1)>",
    "<img src=`x` onerror=`alert(1)`>",
    "<img src=javascript:alert(1)>",
    "<img\nsrc=x\nonerror=alert(1)>",
    "<image src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<svg><set attributeName=href to=javascript:alert(1)>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<svg><iframe><a title=\"</iframe><img src onerror=alert(1)>\">test",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "<math href=javascript:alert(1)>x</math>",
    "<math><annotation-xml encoding=\"text/html\"><script>alert(1)</script></annotation-xml></math>",
    "<iframe src=javascript:alert(1)></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<IFRAME SRC=\"https://evil.example\">",
    "<object data=javascript:alert(1)></object>",
    "<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
    "<embed src=javascript:alert(1)>",
    "<embed src=\"https://evil.example/x.swf\">",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=javascript:alert(1)>x</a>",
    "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "<a href=\" javascript:alert(1)\">x</a>",
    "<a href=\"https://x\" onclick=\"alert(1)\">x</a>",
    "<a onmouseover=alert(1)>x</a>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](java&#9;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](javascript%3Aalert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](< javascript:alert(1)>)",
    "[x]( javascript:alert(1))",
    "[x](\\javascript:alert(1))",
    "[x](javascript://%0Aalert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](DATA:text/html,x)",
    "[x](vbscript:msgbox(1))",
    "[x](VBScript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](ftp://evil.example/)",
    "[x](//evil.example/)",
    "[x](/u/../../logout)",
    "[x](/u/alice\" onclick=\"alert(1))",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x][r]\n\n[r]: <javascript:alert(1)> \"t\"",
    "<javascript:alert(1)>",
    "<https://x\" onmouseover=\"alert(1)>",
    "<https://x' onmouseover='alert(1)>",
    "<https://x.org/\"><script>alert(1)</script>>",
    "<data:text/html,<script>alert(1)</script>>",
    "![x](javascript:alert(1))",
    "![x\" onerror=\"alert(1)](https://x)",
    "![x](https://x\" onerror=\"alert(1))",
    "![x](https://x.org/a.png \"t\\\" onerror=\\\"alert(1)\")",
    "[a](https://x \"title\\\" onclick=\\\"alert(1)\")",
    "[a](https://x 'title\\' onclick=\\'alert(1)')",
    "[a](https://x.org/\"onclick=\"alert(1))",
    "[<img src=x onerror=alert(1)>](https://x.org)",
    "[x](https://x.org)<img src=x onerror=alert(1)>",
    "https://x.org/\"onmouseover=\"alert(1)",
    "https://x.org/<script>alert(1)</script>",
    "https://x.org/'onmouseover='alert(1)'",
    "<style>*{display:none}</style>",
    "<STYLE>@import'https://evil.example/x.css';</STYLE>",
    "<p style=\"background:url(javascript:alert(1))\">x</p>",
    "<div style=\"position:fixed;top:0;left:0;width:100%;height:100%\">x</div>",
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<META HTTP-EQUIV=refresh CONTENT=0;URL=https://evil.example>",
    "<base href=\"https://evil.example/\">",
    "<form action=\"https://evil.example\"><input type=submit></form>",
    "<form><button formaction=javascript:alert(1)>x</button></form>",
    "<input autofocus onfocus=alert(1)>",
    "<select autofocus onfocus=alert(1)>",
    "<textarea autofocus onfocus=alert(1)>",
    "<keygen autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<marquee onstart=alert(1)>",
    "<isindex type=image src=1 onerror=alert(1)>",
    "<x onclick=alert(1)>click</x>",
    "<p onclick=alert(1)>x</p>",
    "<a href=\"https://x.org\" class=\"mention\" data-user=\"bob\">@bob</a>",
    "<code class=\"language-x\" onmouseover=alert(1)>x</code>",
    "```js\" onmouseover=\"alert(1)\ncode\n```",
    "```language-x\"><script>alert(1)</script>\nx\n```",
    "~~~<img src=x onerror=alert(1)>\nx\n~~~",
    "<!--<script>alert(1)</script>-->",
    "<!-- --><script>alert(1)</script><!-- -->",
    "<!--><img src=x onerror=alert(1)>-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<?xml version=\"1.0\"?><script>alert(1)</script>",
    "<!DOCTYPE html><script>alert(1)</script>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<template><script>alert(1)</script></template>",
    "<xmp><script>alert(1)</script></xmp>",
    "<plaintext><script>alert(1)",
    "<table><tr><td onmouseover=alert(1)>x</td></tr></table>",
    "<a href=\"https://x.org\"><a href=\"javascript:alert(1)\">x</a></a>",
    "@<script>alert(1)</script>",
    "@alice<script>alert(1)</script>",
    "@alice\" onclick=\"alert(1)",
    "@<img src=x onerror=alert(1)>",
    "@alice/../../../logout",
    "\u{202e}<script>alert(1)</script>",
    "[\u{202e}lmth.exe](https://x.org/\u{202e}gpj.exe)",
    "\u{2066}@alice\u{2069}",
    "\0<script>alert(1)</script>",
    "<scr\0ipt>alert(1)</scr\0ipt>",
    "[x](java\0script:alert(1))",
    "<img src=x onerror\0=alert(1)>",
    "\u{FEFF}<script>alert(1)</script>",
    "＜script＞alert(1)＜/script＞",
    "<a href=\"javas\u{0}cript:alert(1)\">x</a>",
    "<a\u{0c}href=javascript:alert(1)>x</a>",
    "[x](javascript\u{0}:alert(1))",
    "<img src=\"x\" onerror=\"&#97;&#108;&#101;&#114;&#116;(1)\">",
    "<svg><use href=\"data:image/svg+xml;base64,PHN2ZyBpZD0neCcgeG1sbnM9J2h0dHA6Ly93d3cudzMub3JnLzIwMDAvc3ZnJz48aW1hZ2UgaHJlZj0nMScgb25lcnJvcj0nYWxlcnQoMSknIC8+PC9zdmc+#x\"></use></svg>",
    "<a href=\"https://x.org\" target=\"_blank\">x</a>",
    "<a href=\"https://x.org\" rel=\"opener\">x</a>",
    "<a href=\"https://x.org\" style=\"color:red\">x</a>",
    "<ol start=\"1\" onclick=\"alert(1)\"><li>x</li></ol>",
    "1. x\n\n<ol start=\"javascript:alert(1)\"><li>y</li></ol>",
    "<blockquote cite=\"javascript:alert(1)\">x</blockquote>",
    "<del datetime=x onclick=alert(1)>x</del>",
    "*<em onclick=alert(1)>x</em>*",
];

const ALLOWED_TAGS: &[&str] =
    &["p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a"];
const ALLOWED_ATTRIBUTES: &[(&str, &str)] =
    &[("a", "href"), ("a", "class"), ("a", "data-user"), ("a", "rel"), ("code", "class"), ("ol", "start")];
const FORBIDDEN: &[&str] = &[
    "<script",
    "<iframe",
    "<svg",
    "<img",
    "<style",
    "<object",
    "<embed",
    "<form",
    "<input",
    "<meta",
    "<base",
    "<math",
    "<link",
    "<textarea",
    "<select",
    "<details",
    "<video",
    "<audio",
    "<body",
    "<template",
];

struct TagSeen {
    name: String,
    closing: bool,
    attributes: Vec<(String, String)>,
}

/// A deliberately small HTML tokenizer: it only has to understand what html5ever serializes
/// (escaped text, double-quoted attribute values), and fails the test on anything odd.
fn scan_tags(html: &str) -> Vec<TagSeen> {
    let bytes = html.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while let Some(offset) = html[i..].find('<') {
        let mut j = i + offset + 1;
        let closing = bytes.get(j) == Some(&b'/');
        if closing {
            j += 1;
        }
        let name_start = j;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'-') {
            j += 1;
        }
        let name = html[name_start..j].to_ascii_lowercase();
        assert!(!name.is_empty(), "bare '<' in output: {html}");
        let mut attributes = Vec::new();
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            assert!(j < bytes.len(), "unterminated tag in output: {html}");
            match bytes[j] {
                b'>' => {
                    j += 1;
                    break;
                }
                b'/' => {
                    j += 1;
                    continue;
                }
                _ => {}
            }
            let attr_start = j;
            while j < bytes.len()
                && !matches!(bytes[j], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'=' | b'>' | b'/')
            {
                j += 1;
            }
            let attr = html[attr_start..j].to_ascii_lowercase();
            let mut value = String::new();
            if bytes.get(j) == Some(&b'=') {
                j += 1;
                match bytes.get(j) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let end = html[j + 1..].find(quote as char).expect("unterminated attribute value") + j + 1;
                        value = html[j + 1..end].to_owned();
                        j = end + 1;
                    }
                    _ => {
                        let start = j;
                        while j < bytes.len() && !bytes[j].is_ascii_whitespace() && bytes[j] != b'>' {
                            j += 1;
                        }
                        value = html[start..j].to_owned();
                    }
                }
            }
            attributes.push((attr, value));
        }
        tags.push(TagSeen { name, closing, attributes });
        i = j;
    }
    tags
}

fn assert_safe(source: &str) {
    let rendered = render(source, &users);
    let html = &rendered.html;
    let lower = html.to_ascii_lowercase();
    for bad in FORBIDDEN {
        assert!(!lower.contains(bad), "{bad} in output of {source:?}: {html}");
    }
    assert!(!html.contains(is_bidi_control), "bidi control in output of {source:?}");
    for tag in scan_tags(html) {
        assert!(ALLOWED_TAGS.contains(&tag.name.as_str()), "tag <{}> in output of {source:?}: {html}", tag.name);
        if tag.closing {
            assert!(tag.attributes.is_empty(), "attributes on a closing tag: {html}");
            continue;
        }
        for (attribute, value) in &tag.attributes {
            assert!(!attribute.starts_with("on"), "handler {attribute} in output of {source:?}: {html}");
            assert!(
                ALLOWED_ATTRIBUTES.contains(&(tag.name.as_str(), attribute.as_str())),
                "attribute {}.{attribute} in output of {source:?}: {html}",
                tag.name
            );
            match attribute.as_str() {
                "href" => assert!(
                    ["http://", "https://", "mailto:", "/u/"].iter().any(|p| value.starts_with(p)),
                    "href {value:?} in output of {source:?}: {html}"
                ),
                "class" if tag.name == "a" => assert_eq!(value, "mention", "{source:?}: {html}"),
                "class" => assert!(value.starts_with("language-"), "{source:?}: {html}"),
                "rel" => assert_eq!(value, LINK_REL),
                "start" => assert!(value.bytes().all(|b| b.is_ascii_digit()), "{source:?}: {html}"),
                "data-user" => assert!(is_username(value), "{source:?}: {html}"),
                _ => {}
            }
            if attribute == "href" && value.starts_with("/u/") {
                assert!(is_username(&value[3..]), "{source:?}: {html}");
            }
        }
    }
    for name in &rendered.mentions {
        assert!(is_username(name));
    }
}

#[test]
fn hostile_payloads_are_neutralised() {
    assert!(XSS.len() >= 100, "only {} payloads", XSS.len());
    for payload in XSS {
        assert_safe(payload);
        // The same payloads in common surroundings.
        assert_safe(&format!("> {payload}"));
        assert_safe(&format!("- **{payload}**"));
        assert_safe(&format!("[{payload}](https://x.org)"));
        assert_safe(&format!("@alice {payload} https://x.org/"));
    }
}

#[test]
fn hostile_payloads_concatenated() {
    assert_safe(&XSS.join(""));
    assert_safe(&XSS.join("\n"));
    assert_safe(&XSS.join("\n\n"));
}

#[test]
fn raw_html_payloads_show_literally() {
    assert_eq!(md("<script>alert(1)</script>"), "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>");
    assert_eq!(md("<img src=x onerror=alert(1)>"), "<p>&lt;img src=x onerror=alert(1)&gt;</p>");
    assert_eq!(md("[x](javascript:alert(1))"), "<p>x</p>");
    assert_eq!(md("[x](java&#x09;script:alert(1))"), "<p>x</p>");
    assert_eq!(md("@<script>"), "<p>@&lt;script&gt;</p>");
}

#[test]
fn mention_links_cannot_be_forged_by_users() {
    let r = render("<a href=\"/u/x\" class=\"mention\" data-user=\"x\">x</a> [@alice](/u/alice)", &users);
    assert_eq!(r.html, "<p>&lt;a href=\"/u/x\" class=\"mention\" data-user=\"x\"&gt;x&lt;/a&gt; @alice</p>");
    assert!(r.mentions.is_empty());
}

#[test]
fn sanitizer_policy_holds_on_its_own() {
    // If the writer ever emitted something it should not, ammonia still stops it.
    let clean = |html: &str| SANITIZER.clean(html).to_string();
    assert_eq!(clean("<a href=\"javascript:alert(1)\">x</a>"), "<a rel=\"noopener nofollow ugc\">x</a>");
    assert_eq!(clean("<a href=\"/settings\">x</a>"), "<a rel=\"noopener nofollow ugc\">x</a>");
    assert_eq!(clean("<a href=\"//evil.example\">x</a>"), "<a rel=\"noopener nofollow ugc\">x</a>");
    assert_eq!(clean("<a href=\"/u/../x\">x</a>"), "<a rel=\"noopener nofollow ugc\">x</a>");
    assert_eq!(clean("<a class=\"big\" data-user=\"X!\">x</a>"), "<a rel=\"noopener nofollow ugc\">x</a>");
    assert_eq!(clean("<code class=\"language-a b\">x</code>"), "<code>x</code>");
    assert_eq!(clean("<ol start=\"-1\"><li>x</li></ol>"), "<ol><li>x</li></ol>");
    assert_eq!(clean("<p title=\"t\" lang=\"en\" onclick=\"x\">x</p>"), "<p>x</p>");
    assert_eq!(clean("<img src=x onerror=alert(1)><script>alert(1)</script>"), "");
}

#[test]
fn very_long_input() {
    let line = "Some **bold** text with @alice, a link https://example.org/x?y=1 and `code`.\n";
    let source = line.repeat(100_000 / line.len() + 1);
    assert!(source.len() >= 100_000);
    let r = render(&source, &users);
    assert_eq!(r.mentions, vec!["alice"]);
    assert_safe(&source);
    let payloads = XSS.join(" ").repeat(100_000 / XSS.join(" ").len() + 1);
    assert_safe(&payloads);
}

#[test]
fn deep_nesting_does_not_overflow() {
    let n = 1000;
    let cases = [
        format!("{} deep", ">".repeat(n)),
        format!("{} deep", "> ".repeat(50_000)),
        (0..n).map(|i| format!("{}\n", ">".repeat(i + 1))).collect(),
        format!("{}x", "- ".repeat(n)),
        format!("{}x", "1. ".repeat(n)),
        (0..300).map(|i| format!("{}- x\n", "  ".repeat(i))).collect(),
        format!("{}x{}", "*".repeat(50_000), "*".repeat(50_000)),
        format!("{}x{}", "**~~".repeat(10_000), "~~**".repeat(10_000)),
        format!("{}x{}", "[".repeat(50_000), "](https://x.org)".repeat(5_000)),
        format!("{}x{}", "![".repeat(30_000), "](https://x.org)".repeat(3_000)),
        "<div>".repeat(20_000),
        "<a href=x>".repeat(20_000),
        "`".repeat(100_000),
        // Once quadratic: every rejected URL candidate rescanned the rest of the text.
        format!("x{}", "](https://x.org)".repeat(6_000)),
        format!("(https://x.org/{}", ")".repeat(100_000)),
        "@".repeat(100_000),
        "https://".repeat(10_000),
        "\n".repeat(100_000),
        "\0".repeat(100_000),
    ];
    for source in &cases {
        // Same stack size as a tokio worker thread.
        let source = source.clone();
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || assert_safe(&source))
            .unwrap()
            .join()
            .unwrap();
    }
}

#[test]
fn nesting_is_capped() {
    let html = md(&format!("{} deep", ">".repeat(1000)));
    assert_eq!(html.matches("<blockquote>").count(), MAX_DEPTH);
    assert!(html.contains("deep"));
}

// ---- excerpt ---------------------------------------------------------------------------

#[test]
fn excerpt_strips_markers_and_collapses_whitespace() {
    assert_eq!(excerpt("**bold** and *it* ~~del~~ `code`", 100), "bold and it del code");
    // Inline markup adds no space before punctuation (push notifications and previews).
    assert_eq!(excerpt("Lunch at **noon**, Bob? [see](https://x.org).", 100), "Lunch at noon, Bob? see.");
    assert_eq!(excerpt("# Title\n\nbody   text\n\n\n- a\n- b", 100), "Title body text a b");
    assert_eq!(excerpt("> quoted\nreply", 100), "quoted reply");
    assert_eq!(excerpt("[link text](https://x.org) ![alt](https://x.org/i.png)", 100), "link text alt");
    assert_eq!(excerpt("```rust\nfn main() {}\n```", 100), "fn main() {}");
    assert_eq!(excerpt("<b>raw</b>", 100), "<b>raw</b>");
    assert_eq!(excerpt("  \n\t ", 100), "");
    assert_eq!(excerpt("a\u{202e}b\u{2066}c", 100), "abc");
    assert_eq!(excerpt("@alice see https://x.org.", 100), "@alice see https://x.org.");
}

#[test]
fn excerpt_cuts_with_ellipsis() {
    assert_eq!(excerpt("hello world", 11), "hello world");
    assert_eq!(excerpt("hello world", 10), "hello wor…");
    assert_eq!(excerpt("hello world", 7), "hello…");
    assert_eq!(excerpt("hello world", 1), "…");
    assert_eq!(excerpt("hello world", 0), "");
    assert_eq!(excerpt("ééééé", 4), "ééé…");
    assert_eq!(excerpt("**aaaa** bbbb", 6), "aaaa…");
    for max in 0..30 {
        assert!(excerpt("a b c d e f g h i j k l m n o p", max).chars().count() <= max);
    }
}

#[test]
fn excerpt_of_long_input_is_bounded() {
    let long = "word ".repeat(100_000);
    let e = excerpt(&long, 60);
    assert_eq!(e.chars().count(), 60);
    assert!(e.ends_with('…'));
    let e = excerpt(&"é".repeat(100_000), 5);
    assert_eq!(e, "éééé…");
}
