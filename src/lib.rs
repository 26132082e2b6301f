//! llmeta: chat with LLMs while recording every call's metadata.
//!
//! Layers, data flowing one way: `web` (HTTP, pages) → `accounts` / `domain` (use cases, validated types)
//! → `db` (sqlx `Any` over SQLite or PostgreSQL).
#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod analytics;
pub mod app;
pub mod calls;
pub mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod files;
pub mod hashing;
pub mod housekeeping;
pub mod instance;
pub mod llm;
pub mod mail;
pub mod mock;
pub mod money;
pub mod sealing;
pub mod secret;
pub mod sso;
pub mod telemetry;
pub mod util;
pub mod web;
