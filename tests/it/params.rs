//! The parameter panel: effective values (the model's defaults, else the provider's), parameters that belong to
//! each conversation, named presets, and the system prompt shown on the conversation.

use crate::chat::only_conversation;
use crate::helpers::*;
use reqwest::StatusCode;

/// The value of the form field `id` (an input's value or a textarea's text) in a page.
fn field(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no field {id}"));
    let rest = &html[start..];
    if let Some(v) = rest.split_once("value=\"").map(|(_, v)| v)
        && rest.find("value=\"") < rest.find('>')
    {
        return v.split('"').next().unwrap_or("").to_string();
    }
    let text = &rest[rest.find('>').unwrap() + 1..];
    text.split("</textarea>").next().unwrap_or("").to_string()
}

/// An app whose `mock` model has a default temperature and system prompt, and a signed-in administrator.
async fn app_with_defaults() -> TestApp {
    let mock = spawn_mock().await;
    let app = spawn_app_with(move |c| {
        c.providers = vec![mock_provider("mock", &mock)];
        let mut model = mock_model("mock", "mock", 8192);
        model.defaults.temperature = Some(0.3);
        model.defaults.system_prompt = Some("You are terse.".into());
        c.models = vec![model, mock_model("plain", "mock", 8192)];
        c.max_calls_per_user = 0;
    })
    .await;
    assert_eq!(
        app.browser()
            .setup_admin("admin@example.com")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    app
}

#[tokio::test]
async fn empty_fields_show_what_they_mean_with_the_model() {
    let app = app_with_defaults().await;
    let b = app.browser();
    let (_, html) = b.get_text("/chat").await;
    assert!(
        html.contains("placeholder=\"0.3 (model default)\""),
        "the model's default"
    );
    assert!(
        html.contains("placeholder=\"provider default\""),
        "else the provider's"
    );
    assert!(html.contains("placeholder=\"provider default (up to 1000)\""));
    assert!(html.contains("placeholder=\"Model default: You are terse.\""));
    assert!(!html.contains("placeholder=\"default\""));
    // Each model's meanings go with its option, for the page's script when the model changes.
    assert!(html.contains("data-placeholders=\""));
}

#[tokio::test]
async fn each_conversation_keeps_its_own_parameters_and_shows_its_system_prompt() {
    let app = app_with_defaults().await;
    let b = app.browser();
    b.chat(
        "/chat",
        "cold mock:tokens=2",
        "plain",
        &[
            ("temperature", "0.2"),
            ("system_prompt", "Answer in French."),
        ],
    )
    .await;
    let cold = only_conversation(&app).await;
    b.chat(
        "/chat",
        "warm mock:tokens=2",
        "mock",
        &[("temperature", "0.9")],
    )
    .await;
    let warm: String = sqlx::query_scalar("SELECT id FROM conversations WHERE id <> $1")
        .bind(&cold)
        .fetch_one(app.db())
        .await
        .unwrap();

    let (_, html) = b.get_text(&format!("/c/{cold}")).await;
    assert_eq!(field(&html, "temperature"), "0.2", "the conversation's own");
    assert!(
        html.contains("<option value=\"plain\"") && html.contains("value=\"plain\" data-window")
    );
    assert!(
        html.contains("selected>Mock plain</option>"),
        "its model is selected"
    );
    assert!(html.contains("id=\"system-prompt-shown\""));
    assert!(html.contains("Answer in French."));

    let (_, html) = b.get_text(&format!("/c/{warm}")).await;
    assert_eq!(field(&html, "temperature"), "0.9");
    // No system prompt typed: the model's default is what the next message uses, and is shown.
    assert!(html.contains("You are terse."));

    // A new chat starts from the last choice anywhere.
    let (_, html) = b.get_text("/chat").await;
    assert_eq!(field(&html, "temperature"), "0.9");
    assert!(
        !html.contains("id=\"system-prompt-shown\""),
        "shown on conversations"
    );
}

#[tokio::test]
async fn presets_are_saved_picked_replaced_and_deleted_by_their_owner_only() {
    let app = app_with_defaults().await;
    let b = app.browser();
    let token = b.token().await;
    let save = async |b: &Browser, token: &str, fields: &[(&str, &str)], json: bool| {
        let mut req = b
            .client
            .post(b.url("/presets"))
            .header("x-csrf-token", token)
            .header("origin", &b.base)
            .form(fields);
        if json {
            req = req.header("accept", "application/json");
        }
        req.send().await.unwrap()
    };
    // Without script: back to the chat page with the preset picked.
    let res = save(
        &b,
        &token,
        &[
            ("preset_name", "Precise"),
            ("model", "plain"),
            ("temperature", "0.1"),
            ("system_prompt", "Be exact."),
            ("back", "/chat"),
        ],
        false,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert!(to.starts_with("/chat?preset="), "{to}");
    let (_, html) = b.get_text(&to).await;
    assert_eq!(field(&html, "temperature"), "0.1");
    assert_eq!(field(&html, "system_prompt"), "Be exact.");
    assert!(html.contains("selected>Mock plain</option>"));
    assert!(html.contains(">Precise</option>"));

    // The same name replaces it; the script gets JSON.
    let res = save(
        &b,
        &token,
        &[
            ("preset_name", "Precise"),
            ("model", "mock"),
            ("temperature", "0.05"),
        ],
        true,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["name"], "Precise");
    assert_eq!(rows_in(&app, "presets").await, 1);
    let id = body["id"].as_str().unwrap().to_string();
    assert!(to.ends_with(&id), "replaced in place");

    // What could not be sent is not saved.
    for fields in [
        vec![
            ("preset_name", "Hot"),
            ("model", "mock"),
            ("temperature", "7"),
        ],
        vec![("preset_name", "  "), ("model", "mock")],
        vec![("preset_name", "Nope"), ("model", "no-such-model")],
    ] {
        let res = save(&b, &token, &fields, true).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{fields:?}");
    }
    assert_eq!(rows_in(&app, "presets").await, 1);

    // Someone else can neither use nor delete it.
    let other = app.new_browser();
    assert_eq!(
        other.signup("other@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, html) = other.get_text(&format!("/chat?preset={id}")).await;
    assert_ne!(field(&html, "temperature"), "0.05");
    assert!(!html.contains("Precise"));
    let res = other
        .submit("/settings", &format!("/presets/{id}/delete"), &[])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Settings lists it; its owner deletes it there.
    let (_, html) = b.get_text("/settings").await;
    assert!(html.contains("Precise"));
    let res = b
        .submit("/settings", &format!("/presets/{id}/delete"), &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(rows_in(&app, "presets").await, 0);
}
