//! Integration tests: the real app on port 0 with a fresh database (SQLite file, or a new PostgreSQL
//! database when TEST_DATABASE_URL is set), driven over HTTP like a browser would.

mod accounts;
mod admin;
mod api_keys;
mod api_keys_admin;
mod browser;
mod chat;
mod cli;
mod csrf;
mod explorer;
mod files;
mod health;
mod helpers;
mod history;
mod json;
mod json_memory;
mod limits;
mod mail;
mod nul;
mod openai_api;
mod openai_api_errors;
mod openai_api_failures;
mod openai_sdk;
mod openai_smoke;
mod openapi;
mod pages;
mod providers;
mod recording;
mod resets_and_admins;
mod running;
mod safety;
mod signin_limits;
mod signin_process;
mod slow_clients;
mod storage;
mod verification;
