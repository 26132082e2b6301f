//! The OpenAI-compatible API under `/v1`: bearer-key authentication, OpenAI-shaped errors, chat completions
//! (streamed and not) and the model list.

pub mod auth;
pub mod body;
pub mod chat_completions;
pub mod error;
pub mod models;
pub mod openapi;
pub mod request;
pub mod response;

pub use auth::ApiCaller;
pub use error::ApiError;
