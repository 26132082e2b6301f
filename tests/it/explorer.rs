//! The call explorer with API calls beside UI ones: the source and key filters, the Key column, the key's
//! name in the CSV (and nothing secret), the page of a standalone call (no conversation), usage split by
//! source, and refusals.

use crate::helpers::*;
use reqwest::StatusCode;

/// Text that only the key rows' secret columns hold: it must never appear on a page or in an export.
const SECRET_MARK: &str = "SECRETMARK";

/// An app with UI calls from the chat pages (one of the admin's, one of Alice's) and API calls inserted as
/// the API records them: two standalone calls with Alice's key, one failed call with Bob's.
struct Seeded {
    app: TestApp,
    alice: Browser,
    alice_key: String,
    bob_key: String,
    alice_api_calls: Vec<String>,
    bob_api_call: String,
}

async fn insert_key(app: &TestApp, id: &str, user_id: &str, name: &str, last4: &str) {
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, lookup, secret_hash, last4, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(format!("lookup-{SECRET_MARK}-{id}"))
    .bind(format!("hash-{SECRET_MARK}-{id}"))
    .bind(last4)
    .bind(llmeta::util::now_ms())
    .execute(app.db())
    .await
    .unwrap();
}

/// A standalone API call (no conversation, no messages), as the API records one.
async fn insert_api_call(app: &TestApp, id: &str, user_id: &str, key: &str, status: &str) {
    sqlx::query(
        "INSERT INTO calls (id, user_id, conversation_id, source, api_key_id, provider, model, upstream_model, \
         streamed, request_json, sent_ms, status, input_tokens, output_tokens, usage_source, latency_ms, \
         cost_micros) VALUES ($1, $2, NULL, 'api', $3, 'mock', 'mock', 'mock-upstream', 0, \
         '{\"messages\":[]}', $4, $5, 10, 5, 'provider', 12.5, 250000)",
    )
    .bind(id)
    .bind(user_id)
    .bind(key)
    // Just before now: inside the usage page's default period, which ends now.
    .bind(llmeta::util::now_ms() - 1_000)
    .bind(status)
    .execute(app.db())
    .await
    .unwrap();
}

async fn seeded() -> Seeded {
    let (app, _) = app_with_mock().await;
    app.browser()
        .chat("/chat", "from the admin mock:tokens=3", "mock", &[])
        .await;
    let alice = app.new_browser();
    alice.signup("alice@example.com", PASSWORD).await;
    alice
        .chat("/chat", "from alice mock:tokens=4", "mock", &[])
        .await;
    app.new_browser().signup("bob@example.com", PASSWORD).await;
    let (alice_id, bob_id) = (
        user_id(&app, "alice@example.com").await,
        user_id(&app, "bob@example.com").await,
    );
    let (alice_key, bob_key) = ("key-alice-0001".to_string(), "key-bob-0002".to_string());
    insert_key(&app, &alice_key, &alice_id, "alice laptop", "a1b2").await;
    insert_key(&app, &bob_key, &bob_id, "=bob server", "c3d4").await;
    let alice_api_calls = vec!["api-call-a1".to_string(), "api-call-a2".to_string()];
    for id in &alice_api_calls {
        insert_api_call(&app, id, &alice_id, &alice_key, "ok").await;
    }
    let bob_api_call = "api-call-b1".to_string();
    insert_api_call(&app, &bob_api_call, &bob_id, &bob_key, "error").await;
    Seeded {
        app,
        alice,
        alice_key,
        bob_key,
        alice_api_calls,
        bob_api_call,
    }
}

/// The call ids linked from an explorer page.
fn listed(html: &str) -> Vec<String> {
    html.split("href=\"/admin/calls/")
        .skip(1)
        .map(|part| part[..part.find('"').unwrap()].to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn the_explorer_filters_by_source_and_by_key() {
    let s = seeded().await;
    let admin = s.app.browser();
    let (_, all) = admin.get_text("/admin/calls").await;
    assert_eq!(listed(&all).len(), 5, "two UI calls and three API calls");

    let mut api = s.alice_api_calls.clone();
    api.push(s.bob_api_call.clone());
    let (status, html) = admin.get_text("/admin/calls?source=api").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sorted(listed(&html)), sorted(api.clone()), "only API calls");
    // The Key column names the key of each API call.
    assert!(html.contains("<td>alice laptop</td>"), "{html}");
    assert!(html.contains("<td>=bob server</td>"));

    let (_, html) = admin.get_text("/admin/calls?source=ui").await;
    let ui = listed(&html);
    assert_eq!(ui.len(), 2);
    assert!(ui.iter().all(|id| !api.contains(id)));
    assert!(
        html.contains("<td>ui</td><td>—</td>"),
        "UI calls have no key"
    );

    let (_, html) = admin
        .get_text(&format!("/admin/calls?api_key={}", s.alice_key))
        .await;
    assert_eq!(sorted(listed(&html)), sorted(s.alice_api_calls.clone()));
    // The key filter offers every key by owner, name and the end of the secret, and keeps the chosen one.
    assert!(
        html.contains(&format!(
            "<option value=\"{}\" selected>alice@example.com — alice laptop (sk-…a1b2)</option>",
            s.alice_key
        )),
        "{html}"
    );
    assert!(html.contains("bob@example.com — =bob server (sk-…c3d4)"));

    let (_, html) = admin
        .get_text(&format!(
            "/admin/calls?source=api&api_key={}&status=error",
            s.bob_key
        ))
        .await;
    assert_eq!(listed(&html), vec![s.bob_api_call.clone()]);
    let (status, html) = admin.get_text("/admin/calls?api_key=no-such-key").await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed(&html).is_empty() && html.contains("No calls match."));

    // The filters, kept in the page links: the next page of one key's calls stays on that key.
    let (_, html) = admin
        .get_text(&format!("/admin/calls?api_key={}&sort=cost", s.alice_key))
        .await;
    assert!(
        html.contains(&format!(
            "/admin/calls.csv?api_key={}&#38;sort=cost",
            s.alice_key
        )) || html.contains(&format!(
            "/admin/calls.csv?api_key={}&amp;sort=cost",
            s.alice_key
        ))
    );

    for page in ["/admin/calls", "/admin/calls?source=api"] {
        let (_, html) = admin.get_text(page).await;
        assert!(!html.contains(SECRET_MARK), "{page}");
    }
}

#[tokio::test]
async fn bad_filter_values_are_refused_with_a_message() {
    let s = seeded().await;
    let admin = s.app.browser();
    for (query, says) in [
        ("source=bogus", "Source must be ui"),
        ("source=API", "Source must be ui"),
        (
            "status=done",
            "Status must be one of pending, ok, error, cancelled or interrupted.",
        ),
        (
            "api_key=x%27%20OR%201%3D1",
            "The API key must be chosen from the list",
        ),
        (
            "sort=price",
            "Sort must be one of time, tokens, latency or cost.",
        ),
        (
            "from=2026-11-02&to=2026-11-01",
            "&#39;From&#39; must not be after",
        ),
    ] {
        for path in ["/admin/calls", "/admin/calls.csv"] {
            let (status, body) = admin.get_text(&format!("{path}?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{query}");
            if path == "/admin/calls" {
                assert!(
                    body.contains(says) || body.contains(&says.replace("&#39;", "&#x27;")),
                    "{query}: {body}"
                );
            }
        }
    }
    // The page says why at the top, keeps what was typed in the form, and lists no rows.
    let (status, body) = admin
        .get_text("/admin/calls?min_cost=abc&user=x%40example.com")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("class=\"alert\"") && body.contains("Minimum cost"),
        "{body}"
    );
    assert!(body.contains("name=\"min_cost\" type=\"text\" inputmode=\"decimal\" value=\"abc\""));
    assert!(body.contains("value=\"x@example.com\""));
    assert!(!body.contains("No calls match") && !body.contains("/admin/calls/0"));
}

#[tokio::test]
async fn the_csv_names_the_key_and_holds_nothing_secret() {
    let s = seeded().await;
    let admin = s.app.browser();
    let csv = admin.get("/admin/calls.csv").await.text().await.unwrap();
    let rows = crate::analytics::csv_rows(&csv);
    assert_eq!(rows.len(), 6, "{csv}");
    // The explorer's first twenty columns keep their places; the record's other columns follow.
    assert_eq!(
        rows[0][18..20],
        ["conversation_id", "api_key"],
        "{:?}",
        rows[0]
    );
    assert_eq!(rows[0][20], "top_p");
    let row_of = |id: &str| {
        rows.iter()
            .find(|r| r[0] == *id)
            .unwrap_or_else(|| panic!("{id} in {csv}"))
    };
    for id in &s.alice_api_calls {
        // A standalone call: no conversation; the key's name.
        assert_eq!(row_of(id)[18..20], ["", "alice laptop"], "{:?}", row_of(id));
    }
    // Formula-looking key names are neutralised like any other cell.
    assert_eq!(row_of(&s.bob_api_call)[19], "'=bob server");
    let ui: Vec<&Vec<String>> = rows[1..].iter().filter(|r| r[4] == "ui").collect();
    assert_eq!(ui.len(), 2);
    assert!(ui.iter().all(|r| r[19].is_empty()), "UI calls have no key");
    assert!(!csv.contains(SECRET_MARK) && !csv.contains(MOCK_KEY));
    assert!(!csv.contains(&s.alice_key), "names, not key ids");

    let csv = admin
        .get(&format!(
            "/admin/calls.csv?source=api&api_key={}",
            s.bob_key
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
}

#[tokio::test]
async fn a_standalone_call_has_a_page_with_its_key_and_no_conversation() {
    let s = seeded().await;
    let admin = s.app.browser();
    let id = &s.alice_api_calls[0];
    let (status, html) = admin.get_text(&format!("/admin/calls/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("By alice@example.com"));
    assert!(
        html.contains("<th scope=\"row\">API key</th><td>alice laptop (sk-…a1b2)</td>"),
        "{html}"
    );
    assert!(html.contains("no conversation") && !html.contains("/admin/conversations/"));
    assert!(!html.contains(SECRET_MARK));
    // A UI call's page has its conversation and no key.
    let ui: String = sqlx::query_scalar("SELECT id FROM calls WHERE source = 'ui' LIMIT 1")
        .fetch_one(s.app.db())
        .await
        .unwrap();
    let (_, html) = admin.get_text(&format!("/admin/calls/{ui}")).await;
    assert!(html.contains("/admin/conversations/"), "{html}");
    assert!(!html.contains("<th scope=\"row\">API key</th>"), "{html}");
}

/// The sum of `expr` over the UI calls (of one user, or of all with an empty email).
async fn ui_sum(app: &TestApp, expr: &str, email: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(SUM({expr}) AS BIGINT) FROM calls c JOIN users u ON u.id = c.user_id \
         WHERE c.source = 'ui' AND ($1 = '' OR u.email = $1)"
    )))
    .bind(email)
    .fetch_one(app.db())
    .await
    .unwrap()
}

#[tokio::test]
async fn usage_splits_calls_tokens_and_cost_between_ui_and_api() {
    let s = seeded().await;
    let (status, html) = s.app.browser().get_text("/admin/usage").await;
    assert_eq!(status, StatusCode::OK);
    let row = |key: &str| {
        let start = html
            .find(&format!("<tr><td>{key}</td>"))
            .unwrap_or_else(|| panic!("a row for {key}: {html}"));
        html[start..start + html[start..].find("</tr>").unwrap()].to_string()
    };
    let dollars = |micros: i64| llmeta::web::pages::views::dollars(micros);
    // Per model: all five calls on `mock`, two from the pages, three through the API (15 tokens and $0.25 each).
    let mock = row("mock");
    assert!(mock.contains("<td class=\"num\">2 / 3</td>"), "{mock}");
    assert!(
        mock.contains(&format!(
            "<td class=\"num\">{} / 45</td>",
            ui_sum(&s.app, "c.input_tokens + c.output_tokens", "").await
        )),
        "{mock}"
    );
    assert!(
        mock.contains(&format!(
            "<td class=\"num\">{} / $0.7500</td>",
            dollars(ui_sum(&s.app, "c.cost_micros", "").await)
        )),
        "{mock}"
    );
    // Per user.
    let alice = row("alice@example.com");
    assert!(alice.contains("<td class=\"num\">1 / 2</td>"), "{alice}");
    assert!(
        alice.contains(&format!(
            "<td class=\"num\">{} / 30</td>",
            ui_sum(
                &s.app,
                "c.input_tokens + c.output_tokens",
                "alice@example.com"
            )
            .await
        )),
        "{alice}"
    );
    assert!(
        alice.contains(&format!(
            "<td class=\"num\">{} / $0.5000</td>",
            dollars(ui_sum(&s.app, "c.cost_micros", "alice@example.com").await)
        )),
        "{alice}"
    );
    let bob = row("bob@example.com");
    assert!(
        bob.contains("<td class=\"num\">0 / 1</td>")
            && bob.contains("<td class=\"num\">0 / 15</td>"),
        "{bob}"
    );
    assert!(bob.contains("<td class=\"num\">$0 / $0.2500</td>"), "{bob}");
    assert!(row("admin@example.com").contains("<td class=\"num\">1 / 0</td>"));
}

#[tokio::test]
async fn a_user_is_refused_the_explorer_and_usage_whatever_the_filter() {
    let s = seeded().await;
    let visitor = s.app.new_browser();
    for route in [
        "/admin/calls?source=api".to_string(),
        format!("/admin/calls?api_key={}", s.alice_key),
        "/admin/calls?source=bogus".into(),
        format!("/admin/calls.csv?api_key={}", s.alice_key),
        format!("/admin/calls/{}", s.alice_api_calls[0]),
        "/admin/usage".into(),
    ] {
        let res = s.alice.get(&route).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "user {route}");
        assert!(
            !res.text().await.unwrap().contains("alice laptop"),
            "{route}"
        );
        let res = visitor.get(&route).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "visitor {route}");
    }
}
