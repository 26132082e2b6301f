//! The schemas of what the API answers: a chat completion, the chunks of a stream, the model list, the
//! errors, and `/health`. For the document only: the handlers build their JSON themselves
//! (`web::api::response`, `web::api::error`, `web::health`), and the tests check the two agree.

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// A whole answer (`stream` false or absent).
#[derive(ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-` and the id of the call's record.
    #[schema(example = "chatcmpl-01937c9e-7d1a-7c3e-9b2f-2a4c5d6e7f80")]
    pub id: String,
    pub object: CompletionObject,
    /// Unix seconds.
    pub created: i64,
    /// The model id asked for.
    pub model: String,
    #[schema(min_items = 1, max_items = 1)]
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(ToSchema)]
pub enum CompletionObject {
    #[schema(rename = "chat.completion")]
    ChatCompletion,
}

/// The one answer of a completion.
#[derive(ToSchema)]
pub struct Choice {
    #[schema(minimum = 0, maximum = 0)]
    pub index: i64,
    pub message: AnswerMessage,
    /// The provider's log probabilities (`content`, `refusal`), when asked for with `logprobs`.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<serde_json::Value>,
    /// Why the answer ended, as the provider said: `stop`, `length`, `tool_calls`, `content_filter`, …
    #[schema(example = "stop")]
    pub finish_reason: String,
}

/// The assistant's answer.
#[derive(ToSchema)]
pub struct AnswerMessage {
    pub role: AssistantRole,
    /// The text; null when the answer is only tool calls.
    pub content: Option<String>,
    /// The model's reasoning, when the provider sends it apart from the text.
    pub reasoning_content: Option<String>,
    pub tool_calls: Option<Vec<super::request::ToolCall>>,
    /// Always null: llmeta does not relay refusals apart from the text.
    pub refusal: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AssistantRole {
    Assistant,
}

/// Token counts: the provider's, or llmeta's estimate when the provider reported none.
#[derive(ToSchema)]
pub struct Usage {
    #[schema(minimum = 0)]
    pub prompt_tokens: i64,
    #[schema(minimum = 0)]
    pub completion_tokens: i64,
    #[schema(minimum = 0)]
    pub total_tokens: i64,
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens the provider took from its cache.
    #[schema(minimum = 0)]
    pub cached_tokens: i64,
}

#[derive(ToSchema)]
pub struct CompletionTokensDetails {
    #[schema(minimum = 0)]
    pub reasoning_tokens: i64,
}

/// One event of a stream (`data: {…}`): the role first, then text, reasoning and tool-call deltas, a chunk
/// with `finish_reason`, with `stream_options.include_usage` a chunk with `usage` and no choices, then
/// `data: [DONE]`. A call that fails mid-way ends the stream with an error event (`data: {"error": …}`, the
/// shape of an error response) instead.
#[derive(ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: ChunkObject,
    pub created: i64,
    pub model: String,
    #[schema(max_items = 1)]
    pub choices: Vec<ChunkChoice>,
    /// Only on the usage chunk.
    pub usage: Option<Usage>,
}

/// One server-sent event of a streamed answer, as OpenAPI 3.1 describes an event stream: the schema of each
/// event (`data`, and `event`, `id`, `retry` when sent). Its `data` is a [`ChatCompletionChunk`] as JSON, an
/// [`ApiErrorBody`] as JSON when the call fails mid-way, or `[DONE]` at the end.
pub struct StreamEvent;

impl PartialSchema for StreamEvent {
    fn schema() -> RefOr<Schema> {
        let json = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json")
            .content_schema(Some(
                OneOfBuilder::new()
                    .item(Ref::from_schema_name("ChatCompletionChunk"))
                    .item(Ref::from_schema_name("ApiErrorBody")),
            ));
        let done = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["[DONE]"]));
        ObjectBuilder::new()
            .description(Some(
                "An event of the stream: `data` is a `chat.completion.chunk` (or, when the call fails \
                 mid-way, an error) as JSON, and the last event's is `[DONE]`.",
            ))
            .property("data", OneOfBuilder::new().item(json).item(done))
            .required("data")
            .property("event", ObjectBuilder::new().schema_type(Type::String))
            .property("id", ObjectBuilder::new().schema_type(Type::String))
            .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
            .into()
    }
}

impl ToSchema for StreamEvent {}

#[derive(ToSchema)]
pub enum ChunkObject {
    #[schema(rename = "chat.completion.chunk")]
    ChatCompletionChunk,
}

#[derive(ToSchema)]
pub struct ChunkChoice {
    #[schema(minimum = 0, maximum = 0)]
    pub index: i64,
    pub delta: Delta,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<serde_json::Value>,
    /// Null until the finish chunk.
    pub finish_reason: Option<String>,
}

/// What a chunk adds to the answer.
#[derive(ToSchema)]
pub struct Delta {
    /// Only on the first chunk.
    pub role: Option<AssistantRole>,
    pub content: Option<String>,
    pub reasoning_content: Option<String>,
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a tool call: `index` says which call; `id`, `type` and the name come with its first piece.
#[derive(ToSchema)]
pub struct ToolCallDelta {
    #[schema(minimum = 0)]
    pub index: i64,
    pub id: Option<String>,
    pub r#type: Option<String>,
    pub function: FunctionDelta,
}

#[derive(ToSchema)]
pub struct FunctionDelta {
    pub name: Option<String>,
    /// The next piece of the arguments' JSON text.
    pub arguments: String,
}

/// The models a key may use.
#[derive(ToSchema)]
pub struct ModelList {
    pub object: ListObject,
    pub data: Vec<Model>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListObject {
    List,
}

/// A configured model.
#[derive(ToSchema)]
pub struct Model {
    /// What `model` takes in a chat completion request.
    pub id: String,
    pub object: ModelObject,
    /// Always 0: llmeta does not know when a provider made a model.
    #[schema(minimum = 0, maximum = 0)]
    pub created: i64,
    /// The name of the provider that serves it.
    pub owned_by: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelObject {
    Model,
}

/// An error of `/v1`, in OpenAI's shape.
#[derive(ToSchema)]
pub struct ApiErrorBody {
    pub error: ApiErrorDetail,
}

#[derive(ToSchema)]
pub struct ApiErrorDetail {
    /// What went wrong and what to do, in a sentence. Never a key or an internal cause.
    pub message: String,
    pub r#type: ErrorType,
    /// The request field at fault (`model`, `messages[0].content`, `temperature`, …), or null.
    #[schema(required)]
    pub param: Option<String>,
    /// A stable code (`invalid_json`, `missing_api_key`, `invalid_api_key`, `model_not_found`,
    /// `context_length_exceeded`, `rate_limit_exceeded`, `service_unavailable`, `internal_error`, …; for
    /// 502 and 504 the error's class, e.g. `timeout_first_byte`), or null.
    #[schema(required)]
    pub code: Option<String>,
}

/// OpenAI's error types, and `upstream_error` for a provider's failure.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    RateLimitError,
    UpstreamError,
    ApiError,
}

/// An error outside `/v1` (e.g. `/health` with another method), for a client that asks for JSON.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    pub status: u16,
    /// The `x-request-id` of the request, for the server's log.
    pub request_id: String,
}

/// `/health`: 200 when healthy, 503 otherwise, with the same shape.
#[derive(ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub version: String,
    #[schema(minimum = 0)]
    pub uptime_seconds: i64,
    pub database: HealthDatabase,
    /// Only for a signed-in administrator, or `Authorization: Bearer <LLMETA_MONITORING_TOKEN>`.
    pub counts: Option<HealthCounts>,
    /// RFC 3339; with the counts. Null when there are no messages.
    pub latest_message_at: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

#[derive(ToSchema)]
pub struct HealthDatabase {
    pub backend: Backend,
    pub reachable: Option<bool>,
    /// How long the read check took.
    pub read_ms: Option<f64>,
    /// `POST` only: whether a write went through.
    pub write: Option<WriteCheck>,
    pub write_ms: Option<f64>,
    /// `timed out`, or `storage is full`.
    pub error: Option<String>,
    /// The committer that records model calls.
    pub call_recorder: Recorder,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(ToSchema)]
pub enum WriteCheck {
    #[schema(rename = "ok")]
    Ok,
    #[schema(rename = "failed")]
    Failed,
    #[schema(rename = "timed out")]
    TimedOut,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Recorder {
    Running,
    Stopped,
}

#[derive(ToSchema)]
pub struct HealthCounts {
    #[schema(minimum = 0)]
    pub users: i64,
    #[schema(minimum = 0)]
    pub conversations: i64,
    #[schema(minimum = 0)]
    pub messages: i64,
}
