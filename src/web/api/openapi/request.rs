//! The schema of a chat completion request, for the document only: the handler parses the body itself
//! (`web::api::request`), so these types are never deserialized. Every range is read from the constants the
//! parser checks against, so the document cannot drift from the code.

use crate::domain::params::{self, MIN_MAX_TOKENS, Range};
use crate::web::api::request::{MAX_MESSAGES, MAX_TOP_LOGPROBS};
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa::openapi::Ref;
use utoipa::openapi::schema::{
    ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};

/// A chat completion request, as OpenAI's Chat Completions take it, with `top_k` as llama.cpp and vLLM take
/// it. Text anywhere in the body may not contain U+0000. Fields not listed here are accepted, named in the
/// call's record as ignored, and not sent to the provider.
#[derive(ToSchema)]
#[schema(example = json!({
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello."}],
    "temperature": 0.7
}))]
pub struct ChatCompletionRequest {
    /// A model id from `GET /v1/models`.
    #[schema(min_length = 1)]
    pub model: String,
    #[schema(schema_with = messages)]
    pub messages: Vec<Message>,
    /// Stream the answer as server-sent events (`text/event-stream`) of `chat.completion.chunk` objects,
    /// ending with `data: [DONE]`.
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// How many answers: only 1 is accepted (each call records one answer).
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<i64>,
    #[schema(schema_with = temperature)]
    pub temperature: Option<f64>,
    #[schema(schema_with = top_p)]
    pub top_p: Option<f64>,
    #[schema(schema_with = top_k)]
    pub top_k: Option<i64>,
    #[schema(schema_with = max_tokens)]
    pub max_tokens: Option<i64>,
    #[schema(schema_with = max_completion_tokens)]
    pub max_completion_tokens: Option<i64>,
    #[schema(schema_with = seed)]
    pub seed: Option<i64>,
    #[schema(schema_with = stop)]
    pub stop: Option<Stop>,
    #[schema(schema_with = presence_penalty)]
    pub presence_penalty: Option<f64>,
    #[schema(schema_with = frequency_penalty)]
    pub frequency_penalty: Option<f64>,
    /// Passed to the provider as given.
    pub user: Option<String>,
    /// Tools the model may call; passed to the provider as given.
    pub tools: Option<Vec<Tool>>,
    /// `none`, `auto`, `required`, or an object naming a function; passed to the provider as given.
    #[schema(schema_with = tool_choice)]
    pub tool_choice: Option<serde_json::Value>,
    /// Passed to the provider as given.
    pub parallel_tool_calls: Option<bool>,
    /// For example `{"type": "json_object"}`; passed to the provider as given.
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<serde_json::Value>,
    /// Return the log probabilities of the answer's tokens; passed to the provider as given.
    pub logprobs: Option<bool>,
    #[schema(schema_with = top_logprobs)]
    pub top_logprobs: Option<i64>,
    /// Token id to bias from -100 to 100; passed to the provider as given.
    #[schema(value_type = Option<Object>)]
    pub logit_bias: Option<serde_json::Value>,
    /// Any other field: accepted and ignored.
    #[serde(flatten)]
    pub other: HashMap<String, serde_json::Value>,
}

/// Options of a streamed answer.
#[derive(ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and no choices before `[DONE]`.
    pub include_usage: Option<bool>,
}

/// One message of the conversation, told apart by `role`. Keys other than `role` and `content` (`name`,
/// `tool_calls`, `tool_call_id`, …) are sent to the provider as given.
#[derive(ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// Instructions for the model.
    System {
        content: Content,
    },
    /// OpenAI's newer name for `system`.
    Developer {
        content: Content,
    },
    User {
        content: Content,
    },
    /// An earlier answer: its text, or the tools it called (then `content` may be null or absent).
    Assistant {
        content: Option<Content>,
        tool_calls: Option<Vec<ToolCall>>,
    },
    /// A tool's result, answering the call `tool_call_id`.
    Tool {
        content: Content,
        tool_call_id: String,
    },
}

/// A message's content: text, or a list of parts.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// A content part: text, or (sent to the provider as given, for a model that takes it) an image, audio or a
/// file. The parser takes any other `type` too and sends it on.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    /// `{"url": …}`, a web address or a `data:` URL.
    ImageUrl {
        #[schema(value_type = Object)]
        image_url: serde_json::Value,
    },
    /// `{"data": <base64>, "format": "wav" | "mp3"}`.
    InputAudio {
        #[schema(value_type = Object)]
        input_audio: serde_json::Value,
    },
    /// `{"file_data": …, "filename": …}` or `{"file_id": …}`.
    File {
        #[schema(value_type = Object)]
        file: serde_json::Value,
    },
}

/// A call of a tool, as an assistant made it.
#[derive(ToSchema)]
pub struct ToolCall {
    pub id: String,
    #[schema(example = "function")]
    pub r#type: String,
    pub function: FunctionCall,
}

/// The function a tool call names, with its arguments as JSON text.
#[derive(ToSchema)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// A tool the model may call.
#[derive(ToSchema)]
pub struct Tool {
    #[schema(example = "function")]
    pub r#type: String,
    pub function: FunctionDefinition,
}

/// A function the model may call, with its parameters as a JSON Schema.
#[derive(ToSchema)]
pub struct FunctionDefinition {
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
}

/// `stop`: one sequence, or a list of them.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A number or null (not sent) within `r`, described with the parser's own wording.
fn number(r: &Range<f64>, what: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
        .minimum(Some(r.min))
        .maximum(Some(r.max))
        .description(Some(format!(
            "{} ({} to {}); absent or null: the model's default.{what}",
            r.label, r.min, r.max
        )))
        .build()
}

fn integer(min: i64, max: Option<i64>, description: String) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(min as f64))
        .maximum(max.map(|m| m as f64))
        .description(Some(description))
        .build()
}

fn ranged(r: &Range<i64>, what: &str) -> Object {
    integer(
        r.min,
        Some(r.max),
        format!(
            "{} ({} to {}); absent or null: the model's default.{what}",
            r.label, r.min, r.max
        ),
    )
}

fn temperature() -> Object {
    number(&params::TEMPERATURE, " Higher is more random.")
}

fn top_p() -> Object {
    number(&params::TOP_P, " Nucleus sampling.")
}

fn top_k() -> Object {
    ranged(
        &params::TOP_K,
        " Not OpenAI's: llama.cpp, vLLM and Ollama take it.",
    )
}

fn seed() -> Object {
    ranged(
        &params::SEED,
        " For repeatable answers, where the provider supports it.",
    )
}

fn presence_penalty() -> Object {
    number(&params::PRESENCE_PENALTY, "")
}

fn frequency_penalty() -> Object {
    number(&params::FREQUENCY_PENALTY, "")
}

fn max_tokens() -> Object {
    integer(
        MIN_MAX_TOKENS,
        None,
        format!(
            "The most tokens the answer may have, from {MIN_MAX_TOKENS} to the model's output limit \
             (a larger value is refused with 400). `max_completion_tokens` is the newer name and wins."
        ),
    )
}

fn max_completion_tokens() -> Object {
    integer(
        MIN_MAX_TOKENS,
        None,
        format!(
            "The newer name of `max_tokens`: from {MIN_MAX_TOKENS} to the model's output limit."
        ),
    )
}

fn top_logprobs() -> Object {
    integer(
        0,
        Some(MAX_TOP_LOGPROBS as i64),
        format!(
            "How many likeliest alternatives to return per token (0 to {MAX_TOP_LOGPROBS}), with `logprobs`; \
             passed to the provider as given."
        ),
    )
}

fn messages() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("Message"))
        .min_items(Some(1))
        .max_items(Some(MAX_MESSAGES))
        .description(Some(format!(
            "The conversation so far, oldest first: 1 to {MAX_MESSAGES} messages."
        )))
}

fn stop() -> OneOfBuilder {
    let sequence = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(params::MAX_STOP_CHARS))
    };
    OneOfBuilder::new()
        .item(sequence())
        .item(
            ArrayBuilder::new()
                .items(sequence())
                .max_items(Some(params::MAX_STOP_SEQUENCES)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(format!(
            "Where the answer stops: a sequence or a list of at most {} sequences, each of at most {} \
             characters.",
            params::MAX_STOP_SEQUENCES,
            params::MAX_STOP_CHARS
        )))
}

fn tool_choice() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Object, Type::Null]))
        .description(Some(
            "`none`, `auto`, `required`, or `{\"type\": \"function\", \"function\": {\"name\": …}}`; passed to \
             the provider as given.",
        ))
        .build()
}
