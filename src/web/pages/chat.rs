//! `/chat` (a new conversation) and `/c/{id}` (one conversation): show, send, regenerate.
//!
//! With JavaScript the form is posted with `Accept: text/event-stream` and the answer streams back; without
//! it, the same form posts normally, the server waits for the whole answer and redirects to the page.

use super::views::{Actions, FileChip, Fork, MessageView};
use super::{Chrome, render};
use crate::chat::turn::{self, Ask, Turn, TurnError};
use crate::db::messages::Message;
use crate::db::{calls, conversations, files, messages, prefs, presets};
use crate::domain::{Params, RawParams, Source};
use crate::llm::registry::Model;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::AppError;
use crate::web::extract::{CurrentUser, IdPath, is_id};
use crate::web::stream;
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;

pub struct ModelOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
    /// The context window and the answer's default reservation: the page's script warns before sending files
    /// that will be cut (the server decides exactly).
    pub context_window: i64,
    pub reserve: i64,
    /// What each empty parameter field means with this model (JSON: field → text), for the page's script.
    pub placeholders: String,
}

/// The parameters set, as the closed panel shows them: "temperature 0.2 · max tokens 50 · system prompt".
fn params_summary(p: &RawParams) -> String {
    let mut set: Vec<String> = [
        ("temperature", &p.temperature),
        ("top P", &p.top_p),
        ("top K", &p.top_k),
        ("max tokens", &p.max_tokens),
        ("seed", &p.seed),
        ("presence penalty", &p.presence_penalty),
        ("frequency penalty", &p.frequency_penalty),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(name, v)| format!("{name} {}", v.trim()))
    .collect();
    if !p.stop.trim().is_empty() {
        set.push("stop sequences".into());
    }
    if !p.system_prompt.trim().is_empty() {
        set.push("system prompt".into());
    }
    set.join(" · ")
}

/// What an empty parameter field means with a model: its configured default, else the provider's own.
#[derive(serde::Serialize, Default)]
pub struct Placeholders {
    pub temperature: String,
    pub top_p: String,
    pub top_k: String,
    pub max_tokens: String,
    pub seed: String,
    pub presence_penalty: String,
    pub frequency_penalty: String,
    pub stop: String,
    pub system_prompt: String,
}

impl Placeholders {
    pub fn of(model: &Model) -> Placeholders {
        fn or_provider<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(
                || "provider default".to_string(),
                |v| format!("{v} (model default)"),
            )
        }
        let d = &model.defaults;
        Placeholders {
            temperature: or_provider(d.temperature),
            top_p: or_provider(d.top_p),
            top_k: or_provider(d.top_k),
            max_tokens: d.max_tokens.map_or_else(
                || format!("provider default (up to {})", model.max_output_tokens),
                |v| format!("{v} (model default)"),
            ),
            seed: d
                .seed
                .map_or_else(|| "none".to_string(), |v| format!("{v} (model default)")),
            presence_penalty: or_provider(d.presence_penalty),
            frequency_penalty: or_provider(d.frequency_penalty),
            stop: if d.stop.is_empty() {
                "none".into()
            } else {
                format!("{} (model default)", d.stop.join(" · "))
            },
            system_prompt: d
                .system_prompt
                .as_ref()
                .map_or_else(|| "none".to_string(), |p| format!("Model default: {p}")),
        }
    }
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    chrome: Chrome,
    conversation_id: Option<String>,
    title: String,
    /// What the rename field shows (the title, or a refused title as typed) and its error.
    title_field: String,
    rename_error: Option<String>,
    /// The conversation is pinned to the top of the history (the page offers to unpin it).
    pinned: bool,
    archived: bool,
    /// The conversation list beside the chat.
    side: super::sidebar::Sidebar,
    /// Which key sends a message (`users::SEND_KEYS`).
    send_with: String,
    /// The person's presets, for the parameter panel.
    presets: Vec<presets::Preset>,
    /// What each empty parameter field means with the selected model.
    ph: Placeholders,
    /// The system prompt the conversation's next message uses (typed, else the model's default), shown above it.
    system_prompt: Option<String>,
    /// The parameters set, in a few words, on the closed Parameters panel (nothing hides there unseen).
    params_summary: String,
    action: String,
    messages: Vec<MessageView>,
    models: Vec<ModelOption>,
    selected_is_demo: bool,
    /// Only the demo model is configured: the page says how to connect a real one.
    only_demo: bool,
    params: RawParams,
    content: String,
    errors: Vec<String>,
    unsaved_answer: Option<String>,
    can_regenerate: bool,
    pending: Vec<FileChip>,
    pending_ids: String,
    max_upload_mb: u64,
}

#[derive(Deserialize, Default)]
pub struct SendForm {
    #[serde(default)]
    content: String,
    #[serde(default)]
    model: String,
    /// Ids of uploaded attachments, comma-separated.
    #[serde(default)]
    files: String,
    /// Edit (`/c/{id}/edit` only): the earlier message of the person's that this text replaces (in a new branch).
    #[serde(default)]
    message: String,
    /// Regenerate: the answer to write again (else the conversation's latest).
    #[serde(default)]
    answer: String,
    #[serde(flatten)]
    params: RawParams,
}

impl SendForm {
    /// A form that names no model (an Edit or Regenerate button on a page without script) uses the model and
    /// parameters the composer offers: the person's last choice.
    async fn or_saved(
        mut self,
        state: &AppState,
        user_id: &str,
        conversation: Option<&str>,
    ) -> Result<SendForm, AppError> {
        if self.model.is_empty() {
            let from = Choices {
                conversation,
                preset: None,
            };
            let saved = form_from(state, user_id, from).await?;
            // As the composer shows it: a remembered model that is no longer offered gives way to the first.
            self.model = match state.llm().model(&saved.model) {
                Some(m) => m.id.clone(),
                None => state
                    .llm()
                    .models()
                    .first()
                    .map(|m| m.id.clone())
                    .unwrap_or_default(),
            };
            self.params = saved.params;
        }
        Ok(self)
    }
}

/// What the form shows: the values just sent (after an error) or the person's saved choices.
struct FormState {
    model: String,
    params: RawParams,
    content: String,
    errors: Vec<String>,
    /// Attachments uploaded but not sent yet.
    files: Vec<String>,
    /// An answer received but not saved, shown so that it is not lost unseen.
    unsaved: Option<String>,
    /// A title that could not be used, as typed, and why.
    rename: Option<(String, String)>,
    /// An edit that could not be sent: (the message edited, the text as typed), shown in its edit field.
    edit: Option<(String, String)>,
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    files: String,
    /// A preset to fill the composer with.
    #[serde(default)]
    preset: String,
}

/// Where the composer's model and parameters come from: a preset picked, else the conversation's own last
/// choice, else the person's last choice anywhere.
#[derive(Default, Clone, Copy)]
struct Choices<'a> {
    conversation: Option<&'a str>,
    preset: Option<&'a str>,
}

async fn form_from(
    state: &AppState,
    user_id: &str,
    from: Choices<'_>,
) -> Result<FormState, AppError> {
    let mut chosen = None;
    if let Some(id) = from.preset.filter(|id| is_id(id))
        && let Some(p) = presets::get(state.db(), user_id, id).await?
    {
        chosen = Some((p.model_id, p.params_json));
    }
    if chosen.is_none()
        && let Some(id) = from.conversation
        && let Some(c) = conversations::get_owned(state.db(), id, user_id).await?
        && let (Some(model), Some(json)) = (c.model_id, c.params_json)
    {
        chosen = Some((model, json));
    }
    if chosen.is_none() {
        chosen = prefs::get(state.db(), user_id).await?;
    }
    let (model, params) = match chosen {
        Some((model, json)) => (model, serde_json::from_str(&json).unwrap_or_default()),
        None => (String::new(), RawParams::default()),
    };
    Ok(FormState {
        model,
        params,
        content: String::new(),
        errors: Vec::new(),
        files: Vec::new(),
        unsaved: None,
        rename: None,
        edit: None,
    })
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
    conversation_id: Option<&str>,
    form: FormState,
    status: StatusCode,
) -> Result<Response, AppError> {
    let registry = state.llm();
    let (title, pinned, archived, views) = match conversation_id {
        Some(id) => {
            let c = conversations::get_owned(state.db(), id, &user.user.id)
                .await?
                .ok_or(AppError::NotFound)?;
            let all = messages::all_in(state.db(), &c.id).await?;
            let branch = messages::branch(&all, c.head_id.as_deref());
            let calls: HashMap<String, calls::CallRecord> =
                calls::for_conversation(state.db(), &c.id)
                    .await?
                    .into_iter()
                    .map(|c| (c.id.clone(), c))
                    .collect();
            let attached = files::for_conversation(state.db(), &c.id).await?;
            let sent_tokens = files::tokens_sent_in_conversation(state.db(), &c.id).await?;
            let resent = files::sent_with_questions(state.db(), &c.id).await?;
            let views = branch
                .iter()
                .map(|m| {
                    let call = m.call_id.as_ref().and_then(|id| calls.get(id));
                    // An answer being written here shows its text so far (the page's script then follows it).
                    let so_far = (m.status == "streaming")
                        .then(|| state.live().get(&user.user.id, &c.id, &m.id))
                        .flatten()
                        .map(|relay| {
                            let (content, reasoning) = relay.so_far();
                            Message {
                                content,
                                reasoning,
                                ..m.clone()
                            }
                        });
                    let mut v = MessageView::new(so_far.as_ref().unwrap_or(m), call, &registry);
                    v.fork = Fork::among(&messages::siblings(&all, m), m);
                    v.edit_draft = form
                        .edit
                        .as_ref()
                        .filter(|(id, _)| *id == m.id)
                        .map(|(_, text)| text.clone());
                    v.actions = Some(Actions {
                        conversation_id: c.id.clone(),
                        csrf: csrf.0.clone(),
                    });
                    v.files = attached
                        .iter()
                        .filter(|f| {
                            f.message_id.as_deref() == Some(m.id.as_str())
                                || resent.contains(&(m.id.clone(), f.id.clone()))
                        })
                        .map(|f| FileChip::new(f, sent_tokens.get(&f.id).copied()))
                        .collect();
                    v
                })
                .collect();
            (
                c.title,
                c.pinned_ms.is_some(),
                c.archived_ms.is_some(),
                views,
            )
        }
        None => ("New chat".to_string(), false, false, Vec::new()),
    };
    let selected = registry
        .model(&form.model)
        .or_else(|| registry.models().first())
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let models = registry
        .models()
        .iter()
        .map(|m| ModelOption {
            id: m.id.clone(),
            label: m.display_name.clone(),
            selected: m.id == selected,
            context_window: m.context_window,
            reserve: m.max_output_tokens.min(1024),
            placeholders: serde_json::to_string(&Placeholders::of(m)).unwrap_or_default(),
        })
        .collect();
    let can_regenerate = views.iter().any(|v: &MessageView| !v.is_user);
    let mut pending = Vec::new();
    for id in &form.files {
        if let Some(f) = files::get_owned(state.db(), id, &user.user.id).await?
            && f.message_id.is_none()
            && f.purpose == "chat"
        {
            pending.push(FileChip::new(&f, None));
        }
    }
    let pending_ids = pending
        .iter()
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    render(
        status,
        &ChatPage {
            chrome: Chrome::new(Some(user), csrf),
            action: conversation_id
                .map(|id| format!("/c/{id}"))
                .unwrap_or_else(|| "/chat".into()),
            conversation_id: conversation_id.map(str::to_string),
            title_field: form
                .rename
                .as_ref()
                .map(|(typed, _)| typed.clone())
                .unwrap_or_else(|| title.clone()),
            rename_error: form.rename.as_ref().map(|(_, e)| e.clone()),
            title,
            pinned,
            archived,
            side: super::sidebar::load(state, &user.user.id, conversation_id).await?,
            send_with: crate::db::users::send_with(state.db(), &user.user.id).await?,
            presets: presets::list(state.db(), &user.user.id).await?,
            params_summary: params_summary(&form.params),
            ph: registry
                .model(&selected)
                .map(Placeholders::of)
                .unwrap_or_default(),
            system_prompt: Some(form.params.system_prompt.trim().to_string())
                .filter(|p| !p.is_empty())
                .or_else(|| {
                    registry
                        .model(&selected)
                        .and_then(|m| m.defaults.system_prompt.clone())
                })
                .filter(|_| conversation_id.is_some()),
            messages: views,
            selected_is_demo: registry.model(&selected).is_some_and(Model::is_demo),
            only_demo: registry.models().iter().all(Model::is_demo),
            models,
            params: form.params,
            content: form.content,
            errors: form.errors,
            unsaved_answer: form.unsaved,
            can_regenerate,
            pending,
            pending_ids,
            max_upload_mb: state.config().max_upload_bytes / (1024 * 1024),
        },
    )
}

pub async fn new_page(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let from = Choices {
        conversation: None,
        preset: Some(q.preset.as_str()),
    };
    let mut form = form_from(&state, &user.user.id, from).await?;
    form.files = file_ids(&q.files);
    page(&state, &user, &csrf, None, form, StatusCode::OK).await
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    IdPath(id): IdPath,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let from = Choices {
        conversation: Some(&id),
        preset: Some(q.preset.as_str()),
    };
    let mut form = form_from(&state, &user.user.id, from).await?;
    form.files = file_ids(&q.files);
    page(&state, &user, &csrf, Some(&id), form, StatusCode::OK).await
}

/// The conversation's page again, its rename field showing `typed` with `error` (422).
pub async fn rename_refused(
    state: &AppState,
    user: &CurrentUser,
    csrf: &CsrfToken,
    id: &str,
    typed: String,
    error: String,
) -> Result<Response, AppError> {
    let from = Choices {
        conversation: Some(id),
        preset: None,
    };
    let mut form = form_from(state, &user.user.id, from).await?;
    form.rename = Some((typed, error));
    page(
        state,
        user,
        csrf,
        Some(id),
        form,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// `a,b,c` → ids (at most 20, each a plausible id).
pub fn file_ids(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| is_id(s))
        .take(20)
        .map(str::to_string)
        .collect()
}

/// Removes U+0000 from every field of `form`; returns whether there was any. What is shown again must not hold
/// it (a textarea cannot carry it safely, and it could never be sent).
fn strip_nul(form: &mut SendForm) -> bool {
    let p = &mut form.params;
    let mut found = false;
    for field in [
        &mut form.content,
        &mut form.model,
        &mut form.files,
        &mut p.temperature,
        &mut p.top_p,
        &mut p.top_k,
        &mut p.max_tokens,
        &mut p.seed,
        &mut p.stop,
        &mut p.presence_penalty,
        &mut p.frequency_penalty,
        &mut p.system_prompt,
    ] {
        if field.contains('\0') {
            field.retain(|c| c != '\0');
            found = true;
        }
    }
    found
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

/// The model and validated parameters of a form, or the messages to show.
fn choose(state: &AppState, form: &SendForm) -> Result<(Model, Params), Vec<String>> {
    let model = state
        .llm()
        .model(&form.model)
        .cloned()
        .ok_or_else(|| vec!["Pick one of the offered models.".to_string()])?;
    let params = Params::parse(&form.params, model.max_output_tokens)
        .map_err(|e| e.into_iter().map(|e| e.message).collect::<Vec<_>>())?;
    Ok((model.clone(), params.or(&model.defaults)))
}

/// 429 for a person at their limit of calls at once; a running call usually ends within seconds.
fn busy(message: String, retry_after_secs: u64) -> AppError {
    AppError::TooManyRequests {
        message,
        retry_after_secs,
    }
}

/// Runs a started turn: streamed to the browser, or awaited and redirected (regenerate, which has no typed text to
/// keep: when the answer could not be saved, the reason is the page).
async fn respond(state: AppState, turn: Turn, stream: bool) -> Result<Response, AppError> {
    if stream {
        return Ok(stream::sse(state, turn));
    }
    match wait_for(state, turn).await? {
        Ok(target) => Ok(Redirect::to(&target).into_response()),
        Err(unsaved) => Err(AppError::Unavailable(unsaved.reason)),
    }
}

/// An answer that was received but could not be saved, for the form to show.
struct Unsaved {
    reason: String,
    text: String,
}

/// Runs the call to its end (in its own task: if this request is dropped, the call still finishes and is
/// recorded); the page to go to, or what was not saved.
async fn wait_for(state: AppState, turn: Turn) -> Result<Result<String, Unsaved>, AppError> {
    let target = format!("/c/{}#m-{}", turn.conversation_id, turn.answer_id);
    // Relayed like a streamed answer: a page with script can follow it, and Stop reaches it.
    let (ended, end) = tokio::sync::oneshot::channel();
    stream::relay(&state, turn, Some(ended));
    let ran = end.await.map_err(|_| {
        AppError::Internal(anyhow::anyhow!("the answer's task ended without a result"))
    })?;
    Ok(match ran.saved {
        Ok(()) => Ok(target),
        Err(e) => Err(Unsaved {
            reason: e.message().to_string(),
            text: ran.content,
        }),
    })
}

async fn send_inner(
    state: AppState,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    conversation_id: Option<String>,
    edit_of: Option<String>,
    form: SendForm,
) -> Result<Response, AppError> {
    verified_first(&state, &user)?;
    let form = form
        .or_saved(&state, &user.user.id, conversation_id.as_deref())
        .await?;
    let streaming = wants_stream(&headers);
    // Without JavaScript every error brings the form back with everything typed and attached, and the reasons;
    // the script shows the reason beside the text it still has.
    // An edit's text goes back into its own field (the composer would send it as a new message).
    let again = |form: SendForm, errors: Vec<String>, status: StatusCode, cid: Option<String>| {
        let (state, user, csrf, edit_of) = (&state, &user, &csrf, edit_of.clone());
        async move {
            let (content, edit) = match edit_of {
                Some(id) => (String::new(), Some((id, form.content))),
                None => (form.content, None),
            };
            let form_state = FormState {
                files: file_ids(&form.files),
                model: form.model,
                params: form.params,
                content,
                errors,
                unsaved: None,
                rename: None,
                edit,
            };
            page(state, user, csrf, cid.as_deref(), form_state, status).await
        }
    };
    // The NUL check at the edge lets these forms through (`web::nul`): refused here, with the text kept.
    let mut form = form;
    if strip_nul(&mut form) {
        let message = crate::web::nul::REFUSED.to_string();
        if streaming {
            return Err(AppError::BadRequest(message));
        }
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return again(form, vec![message], status, conversation_id).await;
    }
    let (model, params) = match choose(&state, &form) {
        Ok(ok) => ok,
        Err(errors) if streaming => return Err(AppError::BadRequest(errors.join(" "))),
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return again(form, errors, status, conversation_id).await;
        }
    };
    let files = file_ids(&form.files);
    let ask = Ask {
        user_id: &user.user.id,
        conversation_id: conversation_id.as_deref(),
        content: &form.content,
        model: &model,
        params,
        stream: streaming,
        source: Source::Ui,
        max_files: state.config().uploads.max_files_per_message,
        files: &files,
        // Offered next time; written with the call's start, in the same transaction.
        remember: Some(serde_json::to_string(&form.params).unwrap_or_default()),
    };
    let started = match &edit_of {
        None => turn::ask(state.calls(), ask).await,
        Some(message) => turn::edit(state.calls(), ask, message).await,
    };
    let turn = match started {
        Ok(t) => t,
        Err(TurnError::NotFound) => return Err(AppError::NotFound),
        Err(TurnError::Invalid(msg)) if streaming => return Err(AppError::BadRequest(msg)),
        Err(TurnError::Invalid(msg)) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return again(form, vec![msg], status, conversation_id).await;
        }
        Err(TurnError::Busy {
            message,
            retry_after_secs,
        }) if streaming => return Err(busy(message, retry_after_secs)),
        Err(TurnError::Busy {
            message,
            retry_after_secs,
        }) => {
            let status = StatusCode::TOO_MANY_REQUESTS;
            let mut res = again(form, vec![message], status, conversation_id).await?;
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs),
            );
            return Ok(res);
        }
        Err(TurnError::Internal(e)) => {
            let error = AppError::Internal(e);
            if streaming {
                return Err(error);
            }
            error.log();
            let (message, status) = (error.public_message(), error.status());
            return again(form, vec![message], status, conversation_id).await;
        }
    };
    if streaming {
        return Ok(stream::sse(state, turn));
    }
    let conversation = turn.conversation_id.clone();
    let ran = match wait_for(state.clone(), turn).await {
        Ok(ran) => ran,
        Err(error) => {
            // The runner's task failed (a panic): the form comes back with the text, like any other error.
            error.log();
            let (message, status) = (error.public_message(), error.status());
            return again(form, vec![message], status, Some(conversation)).await;
        }
    };
    match ran {
        Ok(target) => Ok(Redirect::to(&target).into_response()),
        Err(unsaved) => {
            // The question is stored (its conversation now exists); the answer is shown with the reason.
            let form_state = FormState {
                files: file_ids(&form.files),
                model: form.model,
                params: form.params,
                content: form.content,
                errors: vec![unsaved.reason],
                unsaved: Some(unsaved.text),
                rename: None,
                edit: None,
            };
            let status = StatusCode::SERVICE_UNAVAILABLE;
            page(
                &state,
                &user,
                &csrf,
                Some(&conversation),
                form_state,
                status,
            )
            .await
        }
    }
}

/// With mandatory verification, an account that has not verified its address cannot call a model.
fn verified_first(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    if crate::accounts::verification::must_verify(state.config().mail.verification, &user.user) {
        return Err(AppError::NotYet(
            crate::accounts::verification::NOT_YET.into(),
        ));
    }
    Ok(())
}

pub async fn send_new(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    send_inner(state, user, csrf, headers, None, None, form).await
}

pub async fn send(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    IdPath(id): IdPath,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    send_inner(state, user, csrf, headers, Some(id), None, form).await
}

/// `POST /c/{id}/edit` (`message`: the earlier message; `content`: its new text): asks again from there, in a
/// new branch beside the old one.
pub async fn edit(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    IdPath(id): IdPath,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    if !is_id(&form.message) {
        return Err(AppError::BadRequest("Say which message to edit.".into()));
    }
    let message = form.message.clone();
    send_inner(state, user, csrf, headers, Some(id), Some(message), form).await
}

#[derive(Deserialize)]
pub struct BranchForm {
    #[serde(default)]
    to: String,
}

/// `POST /c/{id}/branch` (`to`: a message): shows the branch through that message, down to its newest answer.
pub async fn branch(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
    Form(f): Form<BranchForm>,
) -> Result<Response, AppError> {
    let c = conversations::get_owned(state.db(), &id, &user.user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    let all = messages::all_in(state.db(), &c.id).await?;
    let leaf = messages::newest_leaf(&all, &f.to).ok_or(AppError::NotFound)?;
    let mut conn = state.db().writer().acquire().await?;
    conversations::set_head(&mut conn, &c.id, &leaf).await?;
    Ok(Redirect::to(&format!("/c/{id}#m-{}", f.to)).into_response())
}

pub async fn regenerate(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    IdPath(id): IdPath,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    verified_first(&state, &user)?;
    let form = form.or_saved(&state, &user.user.id, Some(&id)).await?;
    let streaming = wants_stream(&headers);
    let (model, params) = choose(&state, &form).map_err(|e| AppError::BadRequest(e.join(" ")))?;
    let answer = Some(form.answer.as_str()).filter(|a| !a.is_empty());
    let regenerated = turn::regenerate(
        state.calls(),
        &user.user.id,
        &id,
        answer,
        &model,
        params,
        streaming,
    )
    .await;
    match regenerated {
        Ok(t) => respond(state.clone(), t, streaming).await,
        Err(TurnError::NotFound) => Err(AppError::NotFound),
        Err(TurnError::Invalid(msg)) => Err(AppError::BadRequest(msg)),
        Err(TurnError::Busy {
            message,
            retry_after_secs,
        }) => Err(busy(message, retry_after_secs)),
        Err(TurnError::Internal(e)) => Err(AppError::Internal(e)),
    }
}

#[derive(Deserialize)]
pub struct PresetForm {
    #[serde(default)]
    preset_name: String,
    #[serde(default)]
    model: String,
    /// The page to go back to (the chat page the form was on).
    #[serde(default)]
    back: String,
    #[serde(flatten)]
    params: RawParams,
}

/// `POST /presets` (the chat form's model and parameters, and `preset_name`): saves them as a preset, replacing
/// one of that name. Checked as a message would be: a preset that could not be sent is not saved. Answers JSON
/// (`{"id", "name"}`) to the page's script, else goes back to the chat page with the preset picked.
pub async fn save_preset(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(f): Form<PresetForm>,
) -> Result<Response, AppError> {
    let name = f.preset_name.trim();
    if name.is_empty()
        || name.chars().count() > presets::MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(AppError::BadRequest(format!(
            "Name the preset (at most {} characters).",
            presets::MAX_NAME_CHARS
        )));
    }
    let model = state
        .llm()
        .model(&f.model)
        .cloned()
        .ok_or_else(|| AppError::BadRequest("Pick one of the offered models.".into()))?;
    if let Err(errors) = Params::parse(&f.params, model.max_output_tokens) {
        let messages: Vec<String> = errors.into_iter().map(|e| e.message).collect();
        return Err(AppError::BadRequest(messages.join(" ")));
    }
    let json = serde_json::to_string(&f.params).unwrap_or_default();
    let saved = presets::save(
        state.db(),
        &user.user.id,
        name,
        &model.id,
        &json,
        crate::util::now_ms(),
    )
    .await?;
    let id = saved.map_err(|presets::NotSaved::TooMany| {
        AppError::BadRequest(format!(
            "You have {} presets, the most kept: delete one in Settings first.",
            presets::MAX_PER_USER
        ))
    })?;
    if headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
    {
        return Ok(axum::Json(serde_json::json!({ "id": id, "name": name })).into_response());
    }
    // Back to a chat page only (never an address from elsewhere).
    let back = match f.back.strip_prefix("/c/") {
        Some(c) if is_id(c) => f.back.clone(),
        _ => "/chat".to_string(),
    };
    Ok(Redirect::to(&format!("{back}?preset={id}")).into_response())
}

/// `POST /presets/{id}/delete`, from Settings.
pub async fn delete_preset(
    State(state): State<AppState>,
    user: CurrentUser,
    IdPath(id): IdPath,
) -> Result<Response, AppError> {
    if !presets::delete(state.db(), &user.user.id, &id).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to("/settings?saved=preset#chat-settings").into_response())
}
