//! Message search: the `/search` page, reading what the user typed (free words plus
//! Discord-style `from:username` and `in:ID`), and the full-text SQL on each backend
//! (FTS5 `messages_fts` on SQLite, the `search` tsvector and its GIN index on
//! Postgres). Only conversations the searcher is a member of right now are searched.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};

use crate::accounts::CurrentUser;
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::{Db, Store};
use crate::web::layout::Page;
use crate::web::time::{Clock, iso};

use super::store;
use super::views;

/// The newest this many matches are shown; older ones need narrower words or filters.
pub const MAX_HITS: i64 = 50;
/// Longer input is cut here: enough for any real search, and it bounds the work a
/// single request can ask of the full-text index.
const MAX_QUERY_CHARS: usize = 500;
const MAX_USERNAME_CHARS: usize = 64;
/// On Postgres, a search whose words match fewer messages than this takes them all
/// from the GIN index and sorts them; one matching more walks the newest messages
/// instead (see `search`). Either way a query reads at most a few thousand rows for
/// any word that is not both common and only in old messages.
const SCAN_CAP: i64 = 5000;

// The database marks matches with these private-use characters rather than HTML, so
// the snippet can be escaped as plain text first and only our own `<mark>` added.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// What to look for, after parsing and resolving names.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    /// Every word must appear (in any order).
    pub words: Vec<String>,
    pub conversation_id: Option<i64>,
    pub author_id: Option<i64>,
}

/// One matching message as the results list shows it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub message_id: i64,
    pub conversation_id: i64,
    pub conversation_title: String,
    pub author_name: String,
    pub created_at: i64,
    pub time_iso: String,
    /// "Today 14:05" in the searcher's zone (set by the page).
    pub time_label: String,
    /// Escaped text with `<mark>` around the matches: safe to insert as HTML.
    pub snippet_html: String,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    id: i64,
    conversation_id: i64,
    created_at: i64,
    snippet: String,
    body: Option<String>,
    username: String,
    display_name: String,
    kind: String,
    name: String,
    other_name: Option<String>,
}

/// The FTS5 expression for `words`: each one a quoted string, so nothing a user types
/// (`AND`, `NEAR(`, `*`, `:`, `-`, `^`, quotes, parentheses) is read as syntax; a
/// space between strings is FTS5's implicit AND.
pub fn fts5_expression(words: &[String]) -> String {
    words.iter().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

/// Escapes `raw` and turns the match sentinels into `<mark>`. A sentinel typed into a
/// message by someone could otherwise leave a `<mark>` open, so marks are only ever
/// emitted as balanced pairs.
pub fn highlight(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 32);
    let mut open = false;
    for c in raw.chars() {
        match c {
            OPEN if !open => {
                out.push_str("<mark>");
                open = true;
            }
            CLOSE if open => {
                out.push_str("</mark>");
                open = false;
            }
            OPEN | CLOSE => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    if open {
        out.push_str("</mark>");
    }
    out
}

/// `ts_headline` gives no sign that it cut the text, unlike FTS5's `snippet`; compare
/// with the body so both backends show `…` where something was left out.
fn with_ellipses(headline: &str, body: &str) -> String {
    let plain: String = headline.chars().filter(|c| *c != OPEN && *c != CLOSE).collect();
    let (plain, body) = (plain.trim(), body.trim());
    let mut out = String::new();
    if !body.starts_with(plain) {
        out.push('…');
    }
    out.push_str(headline.trim());
    if !body.ends_with(plain) {
        out.push('…');
    }
    out
}

/// The newest matching messages (at most `MAX_HITS`), newest first, from
/// conversations `user_id` is currently a member of; deleted messages and system
/// lines never match.
pub async fn search(store: &Store, user_id: i64, query: &SearchQuery) -> Result<Vec<Hit>, sqlx::Error> {
    if query.words.is_empty() {
        return Ok(Vec::new());
    }
    // Filters are appended only when set: an `($n IS NULL OR …)` form would keep
    // the planners from using the conversation index.
    let mut filters = String::new();
    let mut next = 3;
    if query.conversation_id.is_some() {
        filters.push_str(&format!(" AND m.conversation_id = ${next}"));
        next += 1;
    }
    if query.author_id.is_some() {
        filters.push_str(&format!(" AND m.author_id = ${next}"));
    }
    // Names and titles are looked up for the page of hits only, after the limit.
    let outer = concat!("SELECT h.id, h.conversation_id, h.created_at, {snippet} AS snippet, {body} AS body,
            u.username, u.display_name, c.kind, c.name,
            (SELECT ", crate::shown_name_sql!("ou"), " FROM members o JOIN users ou ON ou.id = o.user_id
                WHERE o.conversation_id = c.id AND o.user_id <> $2 LIMIT 1) AS other_name
        FROM ({inner}) h
        JOIN users u ON u.id = h.author_id
        JOIN conversations c ON c.id = h.conversation_id
        ORDER BY h.id DESC");
    let rows: Vec<HitRow> = match &store.db {
        Db::Sqlite(pool) => {
            // FTS5 is the outer loop and walks its rowids newest first, so the limit
            // stops the scan and `snippet` runs for the shown hits only. Membership is
            // a per-row EXISTS so the planner cannot start from `members` instead.
            let inner = format!(
                "SELECT m.id, m.conversation_id, m.author_id, m.created_at,
                        snippet(messages_fts, 0, '{OPEN}', '{CLOSE}', '…', 16) AS snippet
                 FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
                 WHERE messages_fts MATCH $1 AND m.deleted_at IS NULL AND m.kind = 'text'
                   AND EXISTS (SELECT 1 FROM members mem WHERE mem.conversation_id = m.conversation_id AND mem.user_id = $2)
                   {filters}
                 ORDER BY messages_fts.rowid DESC LIMIT {MAX_HITS}"
            );
            let sql = outer.replace("{inner}", &inner).replace("{snippet}", "h.snippet").replace("{body}", "NULL");
            let mut q = sqlx::query_as(&sql).bind(fts5_expression(&query.words)).bind(user_id);
            if let Some(id) = query.conversation_id {
                q = q.bind(id);
            }
            if let Some(id) = query.author_id {
                q = q.bind(id);
            }
            q.fetch_all(pool).await?
        }
        Db::Postgres(pool) => {
            // `plainto_tsquery` reads any text as plain words, never as operators.
            //
            // No single plan suits every word, and the planner's guess of how many rows
            // a word matches is too rough to choose between them: walking `messages`
            // newest first and testing each row stops early for a common word but reads
            // most of the table for a rare one (or one whose matches are all old), while
            // the GIN index finds a rare word's few rows at once but must fetch and sort
            // every match of a common one. Left to itself it has also driven the search
            // from `members`, scanning the GIN index once per conversation.
            //
            // So `found` first takes matches in whatever order is cheapest (the GIN
            // index for a rare word, a scan that soon stops for a common one), stopping
            // at `SCAN_CAP`. Fewer than that means it holds every match, and the
            // newest are sorted out of it (membership checked on the materialised rows,
            // so the index is read once). Only when there are more does the second
            // branch run, newest first: with at least `SCAN_CAP` matches the walk meets
            // 50 soon. The branches' guards are one-time filters, so only one runs.
            let matches = format!("m.search @@ plainto_tsquery('simple', $1) AND m.deleted_at IS NULL AND m.kind = 'text' {filters}");
            // In the walk, `OFFSET 0` keeps the check a per-row subplan: as a join it
            // lets the planner start from `members` (with stale statistics it did, and
            // scanned the GIN index once per conversation, 300 ms on 1 M messages).
            let member = |alias: &str, fence: &str| {
                format!("EXISTS (SELECT 1 FROM members mem WHERE mem.conversation_id = {alias}.conversation_id AND mem.user_id = $2{fence})")
            };
            let inner = format!(
                "WITH found AS MATERIALIZED (
                    SELECT m.id, m.conversation_id, m.author_id, m.created_at FROM messages m
                    WHERE {matches} LIMIT {SCAN_CAP})
                 SELECT f.id, f.conversation_id, f.author_id, f.created_at, m.body
                 FROM (SELECT * FROM found f
                       WHERE (SELECT count(*) FROM found) < {SCAN_CAP} AND {member_f}
                       ORDER BY f.id DESC LIMIT {MAX_HITS}) f
                 JOIN messages m ON m.id = f.id
                 UNION ALL
                 (SELECT m.id, m.conversation_id, m.author_id, m.created_at, m.body
                  FROM messages m
                  WHERE (SELECT count(*) FROM found) >= {SCAN_CAP} AND {matches} AND {member_m}
                  ORDER BY m.id DESC LIMIT {MAX_HITS})",
                member_f = member("f", ""),
                member_m = member("m", " OFFSET 0"),
            );
            // `ts_headline` re-parses the body, so it runs in the outer query, on the
            // page of hits only. One fragment centres it on the match (by default it
            // starts at the match, with nothing before it), and `ShortWord=0` stops
            // it trimming short words such as "The" off a fragment's ends.
            let headline = format!(
                "ts_headline('simple', h.body, plainto_tsquery('simple', $1), 'StartSel={OPEN}, StopSel={CLOSE}, MaxWords=24, MinWords=8, MaxFragments=1, ShortWord=0')"
            );
            let sql = outer
                .replace("{inner}", &inner)
                .replace("{snippet}", &headline)
                .replace("{body}", "h.body");
            let mut q = sqlx::query_as(&sql).bind(query.words.join(" ")).bind(user_id);
            if let Some(id) = query.conversation_id {
                q = q.bind(id);
            }
            if let Some(id) = query.author_id {
                q = q.bind(id);
            }
            q.fetch_all(pool).await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let raw = match &row.body {
                Some(body) => with_ellipses(&row.snippet, body),
                None => row.snippet.clone(),
            };
            let author_name = crate::accounts::model::shown_name(&row.display_name, &row.username).to_string();
            Hit {
                message_id: row.id,
                conversation_id: row.conversation_id,
                conversation_title: views::title(&row.kind, &row.name, row.other_name.as_deref()),
                author_name,
                created_at: row.created_at,
                time_iso: iso(row.created_at),
                time_label: String::new(),
                snippet_html: highlight(&raw),
            }
        })
        .collect())
}

/// Where to search, as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    All,
    Conversation(i64),
    /// Asked for something that is not a conversation id: nothing can match.
    Nowhere,
}

/// What the user typed, split into words and filters. `from:` and `in:` typed into
/// the text win over the form's fields, as the more specific, more recent choice.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    words: Vec<String>,
    from: String,
    scope: Scope,
}

/// Drops control characters (Postgres refuses NUL in text; the rest only confuse)
/// and our sentinels, and caps the length.
fn clean(input: &str, max: usize) -> String {
    input.chars().filter(|c| !c.is_control() && *c != OPEN && *c != CLOSE).take(max).collect::<String>().trim().to_string()
}

fn parse(q: &str, in_field: &str, from_field: &str) -> Parsed {
    let mut words = Vec::new();
    let mut from = from_field.trim().trim_start_matches('@').to_string();
    let mut scope = match in_field.trim() {
        "" => Scope::All,
        id => id.parse::<i64>().map(Scope::Conversation).unwrap_or(Scope::Nowhere),
    };
    for token in q.split_whitespace() {
        let lower = token.to_lowercase();
        if let Some(name) = lower.strip_prefix("from:").map(|n| n.trim_start_matches('@')).filter(|n| !n.is_empty()) {
            from = name.to_string();
        } else if let Some(id) = lower.strip_prefix("in:").and_then(|id| id.parse::<i64>().ok()) {
            scope = Scope::Conversation(id);
        } else {
            words.push(token.to_string());
        }
    }
    Parsed { words, from, scope }
}

pub struct ConversationOption {
    pub id: i64,
    pub title: String,
    pub selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/search.html")]
pub struct SearchPage {
    page: Page,
    sidebar: views::Sidebar,
    query: String,
    from: String,
    conversations: Vec<ConversationOption>,
    /// A search was run (words were given); decides between results and just the form.
    searched: bool,
    /// The words as searched for, for "No messages match …".
    looked_for: String,
    notice: Option<String>,
    hits: Vec<Hit>,
    max_hits: usize,
}

/// `GET /search?q=…&in=…&from=…`. Parameters are read as a list of pairs so repeated,
/// unknown or malformed ones never turn into an error page: the first of each wins.
pub async fn page(State(state): State<AppState>, user: CurrentUser, Query(params): Query<Vec<(String, String)>>) -> AppResult<SearchPage> {
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("");
    let query = clean(param("q"), MAX_QUERY_CHARS);
    let in_field = clean(param("in"), 32);
    let from_field = clean(param("from"), MAX_USERNAME_CHARS);
    let parsed = parse(&query, &in_field, &from_field);

    let sidebar = views::sidebar_for(&state, user.id, None).await?;
    let conversations = sidebar
        .items.iter()
        .map(|c| ConversationOption { id: c.id, title: c.title.clone(), selected: in_field == c.id.to_string() })
        .collect();

    let mut notice = None;
    let mut hits = Vec::new();
    let searched = !parsed.words.is_empty();
    if !searched && (!parsed.from.is_empty() || parsed.scope != Scope::All) {
        notice = Some("Type a word to search for.".to_string());
    } else if searched {
        let author = if parsed.from.is_empty() {
            Ok(None)
        } else {
            match store::user_by_username(&state.store, &parsed.from).await? {
                Some(author) => Ok(Some(author.id)),
                None => Err(format!("There is no one called @{}.", parsed.from)),
            }
        };
        match (author, parsed.scope) {
            (Err(message), _) => notice = Some(message),
            // Looks exactly like a search that found nothing: whether a conversation
            // exists is not the searcher's to learn.
            (Ok(_), Scope::Nowhere) => {}
            (Ok(author_id), scope) => {
                let conversation_id = if let Scope::Conversation(id) = scope { Some(id) } else { None };
                let search_query = SearchQuery { words: parsed.words.clone(), conversation_id, author_id };
                hits = search(&state.store, user.id, &search_query).await?;
                let clock = Clock::at_now(&user.zone);
                for hit in &mut hits {
                    hit.time_label = clock.stamp(hit.created_at);
                }
            }
        }
    }
    Ok(SearchPage {
        page: Page::new("Search", Some(&user)),
        sidebar,
        from: from_field,
        conversations,
        searched: searched && notice.is_none(),
        looked_for: parsed.words.join(" "),
        notice,
        hits,
        max_hits: MAX_HITS as usize,
        query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_one_quoted_fts5_string() {
        let words: Vec<String> = ["NEAR(a", "b)", "\"x\"", "a*", "col:w", "-x", "^y", "AND"].iter().map(|s| s.to_string()).collect();
        assert_eq!(fts5_expression(&words), r#""NEAR(a" "b)" """x""" "a*" "col:w" "-x" "^y" "AND""#);
    }

    #[test]
    fn snippets_are_escaped_and_marks_balanced() {
        let raw = format!("<b>{OPEN}x{CLOSE}</b> & 'q' {CLOSE}{OPEN}open");
        assert_eq!(highlight(&raw), "&lt;b&gt;<mark>x</mark>&lt;/b&gt; &amp; &#39;q&#39; <mark>open</mark>");
    }

    #[test]
    fn filters_are_taken_out_of_the_text() {
        let parsed = parse("hello from:@Bob in:12 world in:general", "", "");
        assert_eq!(parsed, Parsed { words: vec!["hello".into(), "world".into(), "in:general".into()], from: "bob".into(), scope: Scope::Conversation(12) });
        assert_eq!(parse("x", "abc", "@carol").scope, Scope::Nowhere);
        assert_eq!(parse("x", "abc", "@carol").from, "carol");
        assert_eq!(parse("x", "", "").scope, Scope::All);
    }

    #[test]
    fn headlines_show_where_text_was_cut() {
        assert_eq!(with_ellipses(&format!("b {OPEN}c{CLOSE} d"), "a b c d e"), format!("…b {OPEN}c{CLOSE} d…"));
        assert_eq!(with_ellipses(&format!("{OPEN}c{CLOSE}"), "c"), format!("{OPEN}c{CLOSE}"));
    }

    #[test]
    fn control_characters_and_sentinels_are_dropped() {
        assert_eq!(clean(&format!("a\0b{OPEN}c\u{7}"), 10), "abc");
        assert_eq!(clean(&"x".repeat(600), MAX_QUERY_CHARS).len(), MAX_QUERY_CHARS);
    }
}
