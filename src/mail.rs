//! Outgoing mail. No SMTP transport is configured yet, so messages are written to the log, where an operator
//! can pick them up (the product's documented fallback).

/// Sends (logs) a message.
pub fn send(to: &str, subject: &str, body: &str) {
    tracing::warn!(to = %to, subject = %subject, "no SMTP configured; mail written to the log:\n{body}");
}
