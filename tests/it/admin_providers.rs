//! Providers and models in the administration area: what is offered and whether it answers; an
//! OpenAI-compatible provider added, changed and removed without a restart, its key sealed; a model's name,
//! window, limits, prices and defaults changed at once.

use crate::helpers::*;
use reqwest::StatusCode;

const STORED_KEY: &str = "sk-stored-secret-7f3a9";

async fn auth_seen(mock: &str) -> Vec<String> {
    reqwest::get(mock.replace("/v1", "/_mock/auth"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The notice or error the page was sent back with.
fn said(res: &reqwest::Response) -> String {
    let to = location(res);
    assert!(to.starts_with("/admin/providers?"), "{to}");
    to
}

#[tokio::test]
async fn a_provider_added_here_is_offered_at_once_with_its_key_sealed_and_can_be_removed() {
    let (app, _) = app_with_mock().await;
    let admin = app.browser();
    let (status, html) = admin.get_text("/admin/providers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"provider-mock\""));
    assert!(
        html.contains("answers: 2 models listed"),
        "the configured mock answers"
    );
    assert!(html.contains("configuration"));

    let other = spawn_mock().await;
    let res = admin
        .submit(
            "/admin/providers",
            "/admin/providers",
            &[
                ("name", "local"),
                ("base_url", &other),
                ("api_key", STORED_KEY),
                ("discover_models", "1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(said(&res).contains("notice="), "{}", said(&res));
    // Offered now, without a restart: its listed models are on the chat page and answer.
    let (_, chat) = admin.get_text("/chat").await;
    assert!(
        chat.contains("value=\"mock-large\""),
        "discovered from the new provider"
    );
    let res = admin
        .chat("/chat", "hello mock:tokens=2", "mock-large", &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        auth_seen(&other).await.last().map(String::as_str),
        Some(format!("Bearer {STORED_KEY}").as_str()),
        "the stored key goes to the provider"
    );
    // Stored sealed, and shown nowhere.
    let sealed: String = sqlx::query_scalar("SELECT api_key_sealed FROM stored_providers")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert!(sealed.starts_with("v1:") && !sealed.contains(STORED_KEY));
    let (_, html) = admin.get_text("/admin/providers").await;
    assert!(!html.contains(STORED_KEY));
    assert!(html.contains("stored (sealed with the secret key)"));

    // Changed with the key left blank: the stored key stays.
    let res = admin
        .submit(
            "/admin/providers",
            "/admin/providers",
            &[
                ("name", "local"),
                ("base_url", &other),
                ("discover_models", "1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    admin
        .chat("/chat", "again mock:tokens=2", "mock-large", &[])
        .await;
    assert_eq!(
        auth_seen(&other).await.last().map(String::as_str),
        Some(format!("Bearer {STORED_KEY}").as_str())
    );

    // Removed: its models are no longer offered.
    let res = admin
        .submit("/admin/providers", "/admin/providers/local/delete", &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, chat) = admin.get_text("/chat").await;
    assert!(!chat.contains("value=\"mock-large\""));
    assert_eq!(rows_in(&app, "stored_providers").await, 0);
}

#[tokio::test]
async fn bad_provider_settings_are_refused_and_only_admins_reach_the_page() {
    let (app, mock) = app_with_mock().await;
    let admin = app.browser();
    for (fields, why) in [
        (
            vec![("name", "Has Spaces"), ("base_url", mock.as_str())],
            "name",
        ),
        (
            vec![("name", "mock"), ("base_url", mock.as_str())],
            "configuration",
        ),
        (
            vec![("name", "demo"), ("base_url", mock.as_str())],
            "configuration",
        ),
        (
            vec![("name", "x"), ("base_url", "ftp://example.com")],
            "base URL",
        ),
        (vec![("name", "x"), ("base_url", "not a url")], "base URL"),
        (
            vec![
                ("name", "x"),
                ("base_url", mock.as_str()),
                ("api_key_env", "BAD NAME"),
            ],
            "environment variable",
        ),
    ] {
        let res = admin
            .submit("/admin/providers", "/admin/providers", &fields)
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let to = said(&res);
        assert!(to.contains("error="), "{fields:?}: {to}");
        let (_, html) = admin.get_text(&to).await;
        assert!(html.contains(why), "{fields:?}: {why}");
    }
    assert_eq!(rows_in(&app, "stored_providers").await, 0);

    // A provider that does not answer is saved, and the notice says it offers nothing yet.
    let res = admin
        .submit(
            "/admin/providers",
            "/admin/providers",
            &[
                ("name", "dead"),
                ("base_url", "http://127.0.0.1:1/v1"),
                ("discover_models", "1"),
            ],
        )
        .await;
    let (_, html) = admin.get_text(&said(&res)).await;
    assert!(html.contains("offers no model yet"), "said so");
    assert!(html.contains("does not answer"), "and the table says why");
    admin
        .submit("/admin/providers", "/admin/providers/dead/delete", &[])
        .await;

    let user = app.new_browser();
    assert_eq!(
        user.signup("user@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_ne!(user.get("/admin/providers").await.status(), StatusCode::OK);
    let res = user
        .post_raw(
            "/admin/providers",
            &[("name", "evil"), ("base_url", mock.as_str())],
            Some(&user.token().await),
            Some(&app.base),
        )
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(rows_in(&app, "stored_providers").await, 0);
}

#[tokio::test]
async fn a_models_name_window_limits_prices_and_defaults_change_at_once() {
    let (app, _) = app_with_mock().await;
    let admin = app.browser();
    let res = admin
        .submit(
            "/admin/providers",
            "/admin/models",
            &[
                ("model_id", "mock"),
                ("display_name", "House model"),
                ("context_window", "4000"),
                ("max_output_tokens", "500"),
                ("price_input", "1.5"),
                ("price_cached_input", ""),
                ("price_output", "3"),
                ("temperature", "0.4"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(said(&res).contains("notice="));
    let llm = app.state.llm();
    let m = llm.model("mock").unwrap();
    assert_eq!(m.display_name, "House model");
    assert_eq!((m.context_window, m.max_output_tokens), (4000, 500));
    assert_eq!((m.prices.input, m.prices.output), (1_500_000, 3_000_000));
    assert_eq!(m.defaults.temperature, Some(0.4));
    let (_, chat) = admin.get_text("/chat").await;
    assert!(chat.contains(">House model</option>"));
    assert!(chat.contains("0.4 (model default)"));
    // A call now is priced and limited with the new settings.
    admin
        .chat("/chat", "priced mock:tokens=5", "mock", &[])
        .await;
    let (cost, temperature): (Option<i64>, Option<f64>) =
        sqlx::query_as("SELECT cost_micros, temperature FROM calls")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert!(cost.is_some_and(|c| c > 0), "{cost:?}");
    assert_eq!(temperature, Some(0.4));

    // Refused: an output limit over the window, a bad price, a bad default.
    for (field, value) in [
        ("max_output_tokens", "999999"),
        ("price_input", "cheap"),
        ("temperature", "9"),
    ] {
        let res = admin
            .submit(
                "/admin/providers",
                "/admin/models",
                &[("model_id", "mock"), (field, value)],
            )
            .await;
        assert!(said(&res).contains("error="), "{field}={value}");
    }
    assert_eq!(
        app.state.llm().model("mock").unwrap().max_output_tokens,
        500
    );

    // Values sent back as they were shown keep where they came from: an earlier setting stays a setting,
    // a configured value stays the configuration's.
    let res = admin
        .submit(
            "/admin/providers",
            "/admin/models",
            &[
                ("model_id", "mock"),
                ("display_name", "House model v2"),
                ("context_window", "4000"),
                ("max_output_tokens", "500"),
            ],
        )
        .await;
    assert!(said(&res).contains("notice="));
    let stored: (Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT context_window, display_name FROM model_settings WHERE model_id = 'mock'",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(stored, (Some(4000), Some("House model v2".into())));
    let res = admin
        .submit(
            "/admin/providers",
            "/admin/models",
            &[
                ("model_id", "tiny"),
                ("display_name", "Small one"),
                ("context_window", "400"),
            ],
        )
        .await;
    assert!(said(&res).contains("notice="));
    let window: Option<i64> =
        sqlx::query_scalar("SELECT context_window FROM model_settings WHERE model_id = 'tiny'")
            .fetch_one(app.db())
            .await
            .unwrap();
    assert_eq!(window, None, "unchanged: still the configuration's");

    // Back to the configured settings.
    let res = admin
        .submit(
            "/admin/providers",
            "/admin/models",
            &[("model_id", "mock"), ("reset", "1")],
        )
        .await;
    assert!(said(&res).contains("notice="));
    assert_eq!(
        app.state.llm().model("mock").unwrap().display_name,
        "Mock mock"
    );
}

/// The prices recorded on the newest call.
async fn last_call_prices(app: &TestApp) -> (i64, i64, i64, Option<i64>) {
    sqlx::query_as(
        "SELECT price_input_micros, price_cached_input_micros, price_output_micros, cost_micros FROM calls \
         ORDER BY sent_ms DESC, id DESC LIMIT 1",
    )
    .fetch_one(app.db())
    .await
    .unwrap()
}

#[tokio::test]
async fn the_price_book_charges_each_call_the_prices_in_effect_when_it_starts() {
    let (app, _) = app_with_mock().await;
    let admin = app.browser();
    let day = |offset: i64| {
        llmeta::util::rfc3339_ms(llmeta::util::now_ms() + offset * 86_400_000)[..10].to_string()
    };
    let configured = app.state.llm().model("mock").unwrap().prices;
    let add = |from: String, input: &'static str, output: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .submit(
                    "/admin/providers",
                    "/admin/prices",
                    &[
                        ("model_id", "mock"),
                        ("from", &from),
                        ("price_input", input),
                        ("price_output", output),
                    ],
                )
                .await
        }
    };
    // From yesterday: 10 and 20 dollars per million tokens; from tomorrow: 99 (not yet).
    assert!(said(&add(day(-1), "10", "20").await).contains("notice="));
    assert!(said(&add(day(1), "99", "99").await).contains("notice="));
    admin
        .chat("/chat", "mock:tokens=5 priced", "mock", &[])
        .await;
    let (input, cached, output, cost) = last_call_prices(&app).await;
    assert_eq!(
        (input, cached, output),
        (10_000_000, 10_000_000, 20_000_000)
    );
    assert!(cost.is_some_and(|c| c > 0));
    let (_, page) = admin.get_text("/admin/providers").await;
    assert!(page.contains("(price book)") && page.contains("in effect") && page.contains("coming"));
    // The same date again replaces that row.
    add(day(-1), "12", "24").await;
    admin
        .chat("/chat", "mock:tokens=5 again", "mock", &[])
        .await;
    assert_eq!(last_call_prices(&app).await.0, 12_000_000);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_prices")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(rows, 2);
    // Without the book's rows, the configured prices again; calls already made keep theirs.
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM model_prices")
        .fetch_all(app.db())
        .await
        .unwrap();
    for id in ids {
        let res = admin
            .submit(
                "/admin/providers",
                &format!("/admin/prices/{id}/delete"),
                &[],
            )
            .await;
        assert!(said(&res).contains("notice="));
    }
    admin.chat("/chat", "mock:tokens=5 base", "mock", &[]).await;
    let (input, _, output, _) = last_call_prices(&app).await;
    assert_eq!((input, output), (configured.input, configured.output));
    let kept: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM calls WHERE price_input_micros IN (10000000, 12000000)",
    )
    .fetch_one(app.db())
    .await
    .unwrap();
    assert_eq!(kept, 2, "recorded calls keep the prices they were charged");

    // Refused with a reason: no date, a bad price, no price, an unknown model; and by a non-administrator.
    for fields in [
        vec![("model_id", "mock"), ("from", ""), ("price_input", "1")],
        vec![
            ("model_id", "mock"),
            ("from", "2026-01-01"),
            ("price_input", "cheap"),
        ],
        vec![("model_id", "mock"), ("from", "2026-01-01")],
        vec![
            ("model_id", "nope"),
            ("from", "2026-01-01"),
            ("price_input", "1"),
        ],
    ] {
        let res = admin
            .submit("/admin/providers", "/admin/prices", &fields)
            .await;
        assert!(said(&res).contains("error="), "{fields:?}");
    }
    let user = app.new_browser();
    user.signup("someone@example.com", PASSWORD).await;
    let res = user
        .submit(
            "/settings",
            "/admin/prices",
            &[
                ("model_id", "mock"),
                ("from", "2026-01-01"),
                ("price_input", "1"),
            ],
        )
        .await;
    assert!(!res.status().is_success() && !res.status().is_redirection());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_prices")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
