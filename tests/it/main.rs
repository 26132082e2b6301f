//! Integration tests: the real app on port 0 with a fresh database (SQLite file, or a new PostgreSQL
//! database when TEST_DATABASE_URL is set), driven over HTTP like a browser would.

mod accounts;
mod admin;
mod browser;
mod chat;
mod cli;
mod csrf;
mod files;
mod health;
mod helpers;
mod history;
mod json;
mod limits;
mod pages;
mod recording;
mod safety;
mod slow_clients;
