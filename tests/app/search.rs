//! Message search as people use it: members find words (theirs and others') with
//! highlights and permalinks; non-members and former members find nothing; hostile
//! input never breaks the page; `from:`/`in:` filters; deleted messages, system lines
//! and HTML; and a search over 100,000 messages.

use std::time::Instant;

use axum::http::StatusCode;

use crate::on_both_backends;
use crate::support::{Client, Resp, TestApp};

on_both_backends!(
    members_find_their_own_and_the_others_words_with_marks_and_permalinks,
    non_members_find_nothing_even_when_naming_the_conversation,
    removed_and_departed_members_stop_finding_a_groups_messages,
    hostile_queries_never_break_the_page,
    from_and_in_filters_edits_deletions_system_lines_and_html,
    search_finds_words_in_100k_messages,
    words_mostly_in_other_conversations_find_only_the_searchers,
);

async fn signed_up(app: &TestApp, username: &str) -> Client {
    let mut client = app.client();
    client.register(username).await;
    client
}

/// The number after `/c/` in a redirect's Location.
fn conversation_in(response: &Resp) -> i64 {
    assert_eq!(response.status, StatusCode::SEE_OTHER, "expected a redirect: {}", response.body);
    let location = response.location().expect("a Location");
    location.trim_start_matches("/c/").split(['#', '?', '/']).next().and_then(|id| id.parse().ok()).expect("a conversation id")
}

async fn open_dm(client: &mut Client, with: &str) -> i64 {
    conversation_in(&client.post(&format!("/u/{with}/message"), &[]).await)
}

async fn create_group(client: &mut Client, name: &str, members: &str) -> i64 {
    conversation_in(&client.post("/groups", &[("name", name), ("members", members)]).await)
}

async fn send(client: &mut Client, conversation: i64, body: &str) -> i64 {
    let client_id = format!("search-{}", rand::random::<u64>());
    let response = client.post(&format!("/c/{conversation}/messages"), &[("body", body), ("client_id", &client_id)]).await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "send: {}", response.body);
    response.location().and_then(|l| l.rsplit("#message-").next()).and_then(|id| id.parse().ok()).expect("a message id")
}

async fn user_id(app: &TestApp, username: &str) -> i64 {
    reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT id FROM users WHERE username = $1").bind(username).fetch_one(pool).await
    })
    .expect("user id")
}

/// GET /search with these parameters, which must answer 200.
async fn search(client: &mut Client, params: &[(&str, &str)]) -> Resp {
    let query = serde_urlencoded::to_string(params).expect("query encodes");
    let response = client.get(&format!("/search?{query}")).await;
    assert_eq!(response.status, StatusCode::OK, "/search?{query}: {}", response.body);
    response
}

/// The hits on a results page, in order, as `(conversation, message)` from their permalinks.
fn hits(body: &str) -> Vec<(i64, i64)> {
    let Some(start) = body.find(r#"<ol class="search-results""#) else { return Vec::new() };
    let list = &body[start..body[start..].find("</ol>").map(|end| start + end).expect("the list ends")];
    list.split(r#"<a href="/c/"#)
        .skip(1)
        .map(|rest| {
            let link = rest.split('"').next().expect("a link");
            let (conversation, message) = link.split_once("/m/").expect("a permalink");
            (conversation.parse().expect("conversation id"), message.parse().expect("message id"))
        })
        .collect()
}

/// The results page's entry for `message`.
fn hit_html(body: &str, message: i64) -> &str {
    let start = body.find(&format!("/m/{message}\"")).expect("the hit is listed");
    &body[start..start + body[start..].find("</li>").expect("the hit ends")]
}

async fn members_find_their_own_and_the_others_words_with_marks_and_permalinks(app: TestApp) {
    let mut alice = signed_up(&app, "alice").await;
    let mut bob = signed_up(&app, "bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let fox = send(&mut alice, dm, "The quick brown fox").await;
    let dogs = send(&mut bob, dm, "Lazy dogs sleep all day").await;

    let empty = alice.get("/search").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("<title>Search · Reale</title>"));
    for label in [r#"<label for="search-q">Search messages</label>"#, r#"<label for="search-in">In conversation</label>"#, r#"<label for="search-from">From</label>"#] {
        assert!(empty.body.contains(label), "{label}");
    }
    assert!(empty.body.contains(r#"<form method="get" action="/search""#), "a plain GET form");
    assert!(empty.body.contains(r#"<option value="">All conversations</option>"#));
    assert!(empty.body.contains(&format!(r#"<option value="{dm}">bob</option>"#)), "the DM is offered by its title");
    assert!(empty.body.contains(r#"id="conversation-list""#), "the sidebar is there");
    assert!(!empty.body.contains("No messages match") && hits(&empty.body).is_empty(), "an empty query shows just the form");

    let own = search(&mut alice, &[("q", "fox")]).await;
    assert_eq!(hits(&own.body), vec![(dm, fox)]);
    let entry = hit_html(&own.body, fox);
    assert!(entry.contains("The quick brown <mark>fox</mark>"), "{entry}");
    assert!(entry.contains(r#"<span class="where">bob</span>"#) && entry.contains(r#"<span class="author">alice</span>"#), "{entry}");
    assert!(entry.contains(">Today "), "a time in the searcher's zone (UTC until chosen): {entry}");

    let others = search(&mut alice, &[("q", "DOGS")]).await;
    assert_eq!(hits(&others.body), vec![(dm, dogs)], "case does not matter");
    assert!(hit_html(&others.body, dogs).contains("Lazy <mark>dogs</mark> sleep"));
    assert!(hit_html(&others.body, dogs).contains(r#"<span class="author">bob</span>"#));
    assert_eq!(hits(&search(&mut bob, &[("q", "fox")]).await.body), vec![(dm, fox)], "bob finds alice's words too");

    let both = search(&mut alice, &[("q", "quick fox")]).await;
    assert_eq!(hits(&both.body), vec![(dm, fox)], "every word must appear, in any order");
    let apart = search(&mut alice, &[("q", "quick dogs")]).await;
    assert!(hits(&apart.body).is_empty());
    assert!(apart.body.contains("No messages match “quick dogs”."));

    let newest_first = search(&mut alice, &[("q", "the OR all")]).await;
    assert!(hits(&newest_first.body).is_empty(), "OR is a word to look for, not an operator");
    send(&mut bob, dm, "the fox again").await;
    let two = search(&mut alice, &[("q", "fox")]).await;
    let found = hits(&two.body);
    assert_eq!(found.len(), 2);
    assert!(found[0].1 > found[1].1, "newest first");

    // The link is the message's permalink, which opens the conversation around it.
    let permalink = alice.get(&format!("/c/{dm}/m/{fox}")).await;
    permalink.assert_redirect(&format!("/c/{dm}?around={fox}#message-{fox}"));
}

async fn non_members_find_nothing_even_when_naming_the_conversation(app: TestApp) {
    let mut alice = signed_up(&app, "alice").await;
    signed_up(&app, "bob").await;
    let mut carol = signed_up(&app, "carol").await;
    let dm = open_dm(&mut alice, "bob").await;
    send(&mut alice, dm, "the pineapple is on the table").await;
    let own = open_dm(&mut carol, "carol").await;
    let mine = send(&mut carol, own, "pineapple notes to self").await;

    let plain = search(&mut carol, &[("q", "pineapple")]).await;
    assert_eq!(hits(&plain.body), vec![(own, mine)], "only carol's own saved message");

    let dm_text = dm.to_string();
    let named = search(&mut carol, &[("q", "table"), ("in", &dm_text)]).await;
    let typed = search(&mut carol, &[("q", &format!("table in:{dm}"))]).await;
    let missing = search(&mut carol, &[("q", "table"), ("in", "987654321")]).await;
    let nothing = search(&mut carol, &[("q", "table")]).await;
    for response in [&named, &typed, &missing, &nothing] {
        assert!(hits(&response.body).is_empty());
        assert!(response.body.contains("No messages match “table”."), "looks like any search that found nothing");
        assert!(!response.body.contains(&format!("/c/{dm}")), "nothing points at the DM");
    }
    assert!(!named.body.contains(&format!(r#"value="{dm}""#)), "the DM is not offered to carol");
}

async fn removed_and_departed_members_stop_finding_a_groups_messages(app: TestApp) {
    let mut alice = signed_up(&app, "alice").await;
    let mut bob = signed_up(&app, "bob").await;
    let mut carol = signed_up(&app, "carol").await;
    let group = create_group(&mut alice, "Planning", "bob, carol").await;
    let bobs = send(&mut bob, group, "secret quarterly plans").await;
    let alices = send(&mut alice, group, "more plans for spring").await;
    let newest = vec![(group, alices), (group, bobs)];

    assert_eq!(hits(&search(&mut bob, &[("q", "plans")]).await.body), newest);
    assert_eq!(hits(&search(&mut carol, &[("q", "plans")]).await.body), newest);

    let bob_id = user_id(&app, "bob").await;
    alice.post(&format!("/c/{group}/members/{bob_id}/remove"), &[]).await.assert_redirect(&format!("/c/{group}/members"));
    assert!(hits(&search(&mut bob, &[("q", "plans")]).await.body).is_empty(), "removed: not even his own words");
    assert!(hits(&search(&mut bob, &[("q", "plans"), ("in", &group.to_string())]).await.body).is_empty());
    assert!(hits(&search(&mut bob, &[("q", &format!("secret in:{group}"))]).await.body).is_empty());

    carol.post(&format!("/c/{group}/leave"), &[]).await.assert_redirect("/");
    assert!(hits(&search(&mut carol, &[("q", "plans")]).await.body).is_empty(), "left: nothing");

    assert_eq!(hits(&search(&mut alice, &[("q", "plans")]).await.body), newest, "those still in find everything");
}

async fn hostile_queries_never_break_the_page(app: TestApp) {
    let mut alice = signed_up(&app, "alice").await;
    let own = open_dm(&mut alice, "alice").await;
    let tricky = send(&mut alice, own, "NEAR(a b) col:word AND \"quoted\" a* -x ^x").await;

    let long_word = "a".repeat(2000);
    let many_words = "word ".repeat(400);
    let long_mixed = "NEAR( \" * ) ".repeat(200);
    let hostile: Vec<&str> = vec![
        "\"", "\"\"", "\"unclosed", "AND", "OR", "NOT", "a AND", "NEAR(a b)", "NEAR(", "a*", "*", "col:word", "body:x", "(", ")",
        "-x", "^x", "+", "'; DROP TABLE messages; --", "' OR 1=1 --", "\\", "%", "_", "{a b}", "a:b:c", ":", "!!!", "😀",
        "\u{E000}\u{E001}", "<script>alert(1)</script>", &long_word, &many_words, &long_mixed, "   ", "\t\n",
    ];
    for q in &hostile {
        let response = search(&mut alice, &[("q", q)]).await;
        assert!(!response.body.contains("<script>alert(1)</script>"), "the query is echoed escaped");
        for (_, message) in hits(&response.body) {
            assert_eq!(message, tricky);
        }
    }
    for q in ["NEAR(a b)", "col:word", "\"quoted\"", "AND", "a*", "-x", "^x"] {
        assert_eq!(hits(&search(&mut alice, &[("q", q)]).await.body), vec![(own, tricky)], "{q} is searched as plain words");
    }

    // Raw URLs a form never sends.
    for path in [
        "/search?q=%ff%fe",
        "/search?q=%00",
        "/search?q=a%00b",
        "/search?q=%zz%",
        "/search?q=%",
        "/search?q=x&in=abc",
        "/search?q=x&in=-1",
        "/search?q=x&in=99999999999999999999999",
        "/search?q=x&from=%ff",
        "/search?q=x&from=",
        "/search?q=a&q=b&in=1&in=2",
        "/search?q",
        "/search?=&&=x",
        "/search?q=x&unknown=1",
        "/search?q=from%3A&in=",
        "/search?q=in%3A99999999999999999999999",
    ] {
        let response = alice.get(path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.body);
    }

    // Nothing was dropped, and searching still works.
    assert_eq!(hits(&search(&mut alice, &[("q", "quoted")]).await.body), vec![(own, tricky)]);

    // Signed out: the login page, as everywhere else.
    alice.fresh().get("/search?q=x").await.assert_redirect("/login");
}

async fn from_and_in_filters_edits_deletions_system_lines_and_html(app: TestApp) {
    let mut alice = signed_up(&app, "alice").await;
    let mut bob = signed_up(&app, "bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let group = create_group(&mut alice, "Kitchen", "bob").await;
    let bread = send(&mut bob, dm, "banana bread recipe").await;
    let split = send(&mut alice, dm, "banana split tonight").await;
    let smoothie = send(&mut bob, group, "banana smoothie for everyone").await;

    let all = search(&mut alice, &[("q", "banana")]).await;
    assert_eq!(hits(&all.body), vec![(group, smoothie), (dm, split), (dm, bread)]);

    // from: typed, as a field, with or without @, in any case.
    let from_bob = vec![(group, smoothie), (dm, bread)];
    assert_eq!(hits(&search(&mut alice, &[("q", "banana from:bob")]).await.body), from_bob);
    assert_eq!(hits(&search(&mut alice, &[("q", "From:@Bob banana")]).await.body), from_bob);
    assert_eq!(hits(&search(&mut alice, &[("q", "banana"), ("from", "@bob")]).await.body), from_bob);
    assert_eq!(hits(&search(&mut alice, &[("q", "banana"), ("from", "alice")]).await.body), vec![(dm, split)]);
    let unknown = search(&mut alice, &[("q", "banana"), ("from", "nobody")]).await;
    assert!(hits(&unknown.body).is_empty());
    assert!(unknown.body.contains("There is no one called @nobody."), "{}", unknown.body);
    assert!(!unknown.body.contains("No messages match"));
    let only_filter = search(&mut alice, &[("q", "from:bob")]).await;
    assert!(hits(&only_filter.body).is_empty() && only_filter.body.contains("Type a word to search for."));

    // in: typed or chosen, and both filters together.
    let group_text = group.to_string();
    assert_eq!(hits(&search(&mut alice, &[("q", &format!("banana in:{group}"))]).await.body), vec![(group, smoothie)]);
    let chosen = search(&mut alice, &[("q", "banana"), ("in", &group_text)]).await;
    assert_eq!(hits(&chosen.body), vec![(group, smoothie)]);
    assert!(chosen.body.contains(&format!(r#"<option value="{group}" selected>Kitchen</option>"#)), "the choice is kept");
    assert!(chosen.body.contains(r#"<span class="where">Kitchen</span>"#));
    assert_eq!(hits(&search(&mut alice, &[("q", &format!("banana in:{dm} from:bob"))]).await.body), vec![(dm, bread)]);
    assert!(hits(&search(&mut alice, &[("q", "banana from:alice"), ("in", &group_text)]).await.body).is_empty());

    // System lines ("alice created the group …") are not messages anyone wrote.
    assert!(hits(&search(&mut alice, &[("q", "created")]).await.body).is_empty());
    assert!(hits(&search(&mut bob, &[("q", "Kitchen")]).await.body).is_empty());

    // Edited: the new words are found, the old ones are gone.
    alice.post(&format!("/c/{dm}/m/{split}/edit"), &[("body", "mango split tonight")]).await.assert_redirect(&format!("/c/{dm}/m/{split}"));
    assert_eq!(hits(&search(&mut alice, &[("q", "banana")]).await.body), from_bob);
    assert_eq!(hits(&search(&mut alice, &[("q", "mango")]).await.body), vec![(dm, split)]);

    // Deleted: gone from search for everyone.
    let fleeting = send(&mut bob, dm, "an ephemeral thought").await;
    assert_eq!(hits(&search(&mut alice, &[("q", "ephemeral")]).await.body), vec![(dm, fleeting)]);
    bob.post(&format!("/c/{dm}/m/{fleeting}/delete"), &[]).await;
    assert!(hits(&search(&mut alice, &[("q", "ephemeral")]).await.body).is_empty());
    assert!(hits(&search(&mut bob, &[("q", "ephemeral")]).await.body).is_empty());

    // HTML in a message is text in its snippet; only our own <mark> is markup.
    let bold = send(&mut bob, dm, "<b>x</b> boldly <img src=x onerror=alert(1)> & more").await;
    let found = search(&mut alice, &[("q", "boldly")]).await;
    assert_eq!(hits(&found.body), vec![(dm, bold)]);
    let entry = hit_html(&found.body, bold);
    assert!(entry.contains("<mark>boldly</mark>") && entry.contains("&amp; more"), "{entry}");
    if app.state.store.backend_name() == "sqlite" {
        // Postgres's parser takes `<b>` for a tag and may leave it out of a headline.
        assert!(entry.contains("&lt;b&gt;x&lt;/b&gt; <mark>boldly</mark> &lt;img src=x onerror=alert(1)&gt; &amp; more"), "{entry}");
    }
    assert!(!entry.contains("<b>") && !entry.contains("<img"), "{entry}");
    let text = snippet(&found.body, bold).replace("<mark>", "").replace("</mark>", "");
    assert!(!text.contains('<') && !text.contains('>'), "only <mark> is markup: {text}");
    let inner = search(&mut alice, &[("q", "onerror")]).await;
    assert_eq!(hits(&inner.body), vec![(dm, bold)]);
    assert!(!hit_html(&inner.body, bold).contains("<img"));
}

async fn search_finds_words_in_100k_messages(app: TestApp) {
    const TOTAL: i64 = 100_000;
    let mut alice = signed_up(&app, "alice").await;
    signed_up(&app, "bob").await;
    let mut carol = signed_up(&app, "carol").await;
    let dm = open_dm(&mut alice, "bob").await;
    let elsewhere = open_dm(&mut carol, "bob").await;
    let (alice_id, bob_id) = (user_id(&app, "alice").await, user_id(&app, "bob").await);

    let started = Instant::now();
    // One statement generates the rows: five carry the rare word, as do a deleted
    // message and a system line (neither may be found); a second statement puts the
    // word in a conversation alice is not in.
    let insert = "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1)
        INSERT INTO messages (conversation_id, author_id, kind, body, html, created_at, deleted_at)
        SELECT $2, CASE WHEN n % 2 = 0 THEN $3 ELSE $4 END,
               CASE WHEN n = 50001 THEN 'system' ELSE 'text' END,
               CASE WHEN n % 20000 = 1234 OR n IN (50000, 50001) THEN 'we saw a zyzzyva near message ' || n
                    ELSE 'filler message number ' || n || ' about lunch and the weather' END,
               '', $5 + n, CASE WHEN n = 50000 THEN $5 ELSE NULL END
        FROM seq";
    let base = reale::store::now_ms() - TOTAL * 1000;
    reale::with_db!(app.state.store, pool => {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query(insert).bind(TOTAL).bind(dm).bind(alice_id).bind(bob_id).bind(base).execute(&mut *tx).await.expect("bulk insert");
        sqlx::query("INSERT INTO messages (conversation_id, author_id, kind, body, html, created_at) VALUES ($1, $2, 'text', 'a zyzzyva elsewhere', '', $3)")
            .bind(elsewhere)
            .bind(bob_id)
            .bind(base)
            .execute(&mut *tx)
            .await
            .expect("insert elsewhere");
        tx.commit().await.expect("commit");
    });
    let inserted = started.elapsed();

    let expected: Vec<(i64, i64)> = reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM messages WHERE conversation_id = $1 AND body LIKE '%zyzzyva%' AND kind = 'text' AND deleted_at IS NULL ORDER BY id DESC",
        )
        .bind(dm)
        .fetch_all(pool)
        .await
    })
    .expect("expected ids")
    .into_iter()
    .map(|id| (dm, id))
    .collect();
    assert_eq!(expected.len(), 5);

    let searching = Instant::now();
    let rare = search(&mut alice, &[("q", "zyzzyva")]).await;
    let rare_took = searching.elapsed();
    assert_eq!(hits(&rare.body), expected, "exactly the five live text messages, newest first");
    assert!(rare.body.contains("5 messages match “zyzzyva”"));
    assert!(rare.body.contains("<mark>zyzzyva</mark>"));

    let from_bob: Vec<(i64, i64)> = expected.iter().copied().filter(|(_, id)| hits_author_is(&rare.body, *id, "bob")).collect();
    assert_eq!(hits(&search(&mut alice, &[("q", "zyzzyva from:bob")]).await.body), from_bob);
    assert_eq!(hits(&search(&mut carol, &[("q", "zyzzyva")]).await.body).len(), 1, "carol only sees her own conversation's");

    let searching = Instant::now();
    let common = search(&mut alice, &[("q", "lunch weather")]).await;
    let common_took = searching.elapsed();
    let found = hits(&common.body);
    assert_eq!(found.len(), 50, "the newest 50 of 99,998");
    assert!(found.windows(2).all(|pair| pair[0].1 > pair[1].1), "newest first");
    assert!(common.body.contains("showing the newest 50"));
    let newest: i64 = reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT MAX(id) FROM messages WHERE conversation_id = $1 AND body LIKE '%lunch%'").bind(dm).fetch_one(pool).await
    })
    .expect("newest");
    assert_eq!(found[0], (dm, newest));

    let searching = Instant::now();
    assert!(hits(&search(&mut alice, &[("q", "zyzzyva lunch")]).await.body).is_empty());
    let none_took = searching.elapsed();
    eprintln!(
        "search_finds_words_in_100k_messages on {}: insert {inserted:?}, rare word {rare_took:?}, common words {common_took:?}, no match {none_took:?}, total {:?}",
        app.state.store.backend_name(),
        started.elapsed()
    );
}

/// The inner HTML of the snippet of `message`'s hit.
fn snippet(body: &str, message: i64) -> &str {
    let entry = hit_html(body, message);
    let start = entry.find(r#"<span class="snippet">"#).expect("a snippet") + r#"<span class="snippet">"#.len();
    &entry[start..start + entry[start..].find("</span>").expect("the snippet ends")]
}

fn hits_author_is(body: &str, message: i64, author: &str) -> bool {
    hit_html(body, message).contains(&format!(r#"<span class="author">{author}</span>"#))
}

/// Postgres picks a plan by how many messages a word matches (a few thousand is the
/// switch), before membership and filters narrow them. Words on either side of it,
/// matching mostly where the searcher is not a member, must find exactly the newest
/// live matches that are theirs.
async fn words_mostly_in_other_conversations_find_only_the_searchers(app: TestApp) {
    let mut alice = signed_up(&app, "alice").await;
    signed_up(&app, "bob").await;
    let mut carol = signed_up(&app, "carol").await;
    let dm = open_dm(&mut alice, "bob").await;
    let elsewhere = open_dm(&mut carol, "bob").await;
    let (alice_id, bob_id) = (user_id(&app, "alice").await, user_id(&app, "bob").await);
    // Alice's 80 messages come first (oldest), then the other conversation's: 12,000
    // with "quokka" and 3,000 with "wombat". Alice has 80 of each word; every tenth
    // of hers is deleted.
    let insert = "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1)
        INSERT INTO messages (conversation_id, author_id, kind, body, html, created_at, deleted_at)
        SELECT CASE WHEN n <= 80 THEN $2 ELSE $3 END, CASE WHEN n % 2 = 0 THEN $4 ELSE $5 END, 'text',
               CASE WHEN n <= 80 THEN 'quokka wombat ' || n WHEN n <= 3080 THEN 'quokka wombat ' || n ELSE 'quokka ' || n END,
               '', n, CASE WHEN n <= 80 AND n % 10 = 0 THEN n ELSE NULL END
        FROM seq";
    reale::with_db!(app.state.store, pool => {
        sqlx::query(insert).bind(12_080i64).bind(dm).bind(elsewhere).bind(alice_id).bind(bob_id).execute(pool).await.map(|_| ())
    })
    .expect("bulk insert");
    if let reale::store::Db::Postgres(pool) = &app.state.store.db {
        sqlx::query("ANALYZE messages").execute(pool).await.expect("analyze");
    }
    let alices = |author: Option<i64>| -> Vec<(i64, i64)> {
        let mut ids: Vec<i64> = Vec::new();
        for n in (1..=80i64).rev() {
            let by = if n % 2 == 0 { alice_id } else { bob_id };
            if n % 10 != 0 && author.is_none_or(|a| a == by) {
                ids.push(n);
            }
        }
        ids.into_iter().take(50).map(|n| (dm, n)).collect()
    };
    let first_id: i64 = reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT MIN(id) FROM messages WHERE conversation_id = $1 AND body LIKE 'quokka%'").bind(dm).fetch_one(pool).await
    })
    .expect("first id");
    let shift = |expected: Vec<(i64, i64)>| -> Vec<(i64, i64)> { expected.into_iter().map(|(c, n)| (c, first_id + n - 1)).collect() };

    for word in ["quokka", "wombat"] {
        assert_eq!(hits(&search(&mut alice, &[("q", word)]).await.body), shift(alices(None)), "{word}");
        assert_eq!(hits(&search(&mut alice, &[("q", &format!("{word} from:bob"))]).await.body), shift(alices(Some(bob_id))), "{word} from:bob");
        assert_eq!(hits(&search(&mut alice, &[("q", &format!("{word} in:{dm}"))]).await.body), shift(alices(None)), "{word} in:dm");
        assert!(hits(&search(&mut alice, &[("q", &format!("{word} in:{elsewhere}"))]).await.body).is_empty(), "{word} elsewhere");
        let carols = hits(&search(&mut carol, &[("q", word)]).await.body);
        assert_eq!(carols.len(), 50, "{word} for carol");
        assert!(carols.iter().all(|(c, _)| *c == elsewhere) && carols.windows(2).all(|p| p[0].1 > p[1].1));
    }
}
