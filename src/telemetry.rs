//! Logging: `tracing` with text or JSON lines (`LLMETA_LOG_FORMAT=json` or `--log-json`), filtered by
//! `LLMETA_LOG` or `RUST_LOG` (default `info`). Secrets never reach a log line: they are wrapped in
//! `Secret`, and request spans record the path without the query string.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter = std::env::var("LLMETA_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already initialised (tests start several apps in one process): keep the first subscriber.
    let _ = result;
}
