//! Outgoing mail: reset links, and later verification mails.
//!
//! With `LLMETA_SMTP_URL` set, a mail is checked and built at once (a bad address is the caller's error) and
//! then handed to a task that sends it off the request's path: a slow or unreachable server never holds up the
//! page. A mail the server does not take is tried again with growing pauses until `retry_for` has passed, and
//! the log says why each attempt failed; a permanent refusal (5xx) is not retried. Mail bodies carry secrets
//! (reset links) and never reach the log when SMTP is configured.
//!
//! Without SMTP the mail is written to the log, where an operator can pick it up: the documented fallback.

use crate::config::mail::{MailConfig, SmtpTls};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Mails waiting to be sent (first attempts and retries together); past this a mail is dropped and logged.
const QUEUE: usize = 1000;
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(300);
/// One attempt (connect, TLS, the whole exchange) takes at most this long (enforced around lettre's send).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// A mail to send: a plain-text body and the same as HTML.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("'{0}' is not an email address mail can be sent to")]
    BadAddress(String),
    #[error("the mail could not be built: {0}")]
    Build(String),
    #[error("too many mails are waiting to be sent; try again later")]
    Busy,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    /// The sender and the sending task's queue; None: mails are written to the log.
    smtp: Option<(Mailbox, mpsc::Sender<Message>)>,
}

impl Mailer {
    /// A mailer for `config`; with SMTP its sending task starts on the current runtime.
    pub fn start(config: &MailConfig) -> anyhow::Result<Mailer> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("LLMETA_MAIL_FROM: {e}"))?;
        let Some(smtp) = &config.smtp else {
            return Ok(Mailer::log_only());
        };
        let builder = match smtp.tls {
            SmtpTls::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    .tls(Tls::Required(TlsParameters::new(smtp.host.clone())?))
            }
            SmtpTls::Implicit => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    .tls(Tls::Wrapper(TlsParameters::new(smtp.host.clone())?))
            }
        };
        let mut builder = builder.port(smtp.port).timeout(Some(ATTEMPT_TIMEOUT));
        if let Some(user) = &smtp.user {
            let password = smtp
                .password
                .as_ref()
                .map(|p| p.expose().clone())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let transport = builder.build();
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(transport, rx, config.retry_for));
        Ok(Mailer {
            smtp: Some((from, tx)),
        })
    }

    /// A mailer that writes to the log.
    pub fn log_only() -> Mailer {
        Mailer { smtp: None }
    }

    /// Whether mails really leave (SMTP is configured) rather than being written to the log.
    pub fn sends(&self) -> bool {
        self.smtp.is_some()
    }

    /// Checks and builds the mail, then sends it off the caller's path (or writes it to the log).
    pub fn send(&self, mail: Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::BadAddress(mail.to.clone()))?;
        let Some((from, queue)) = &self.smtp else {
            tracing::warn!(to = %mail.to, subject = %mail.subject,
                "no SMTP configured; mail written to the log:\n{}", mail.text);
            return Ok(());
        };
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(one_line(&mail.subject))
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| MailError::Build(e.to_string()))?;
        queue.try_send(message).map_err(|e| {
            match e {
                mpsc::error::TrySendError::Full(_) => {
                    tracing::error!(to = %mail.to, "mail queue full; a mail was not sent")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    tracing::error!(to = %mail.to, "the mail sender has stopped; a mail was not sent")
                }
            }
            MailError::Busy
        })
    }
}

/// A subject is one line: line breaks and other control characters become spaces (no header injection, even
/// though lettre encodes the header as well).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A mail not sent yet: when to try next, and when to give up.
struct Waiting {
    message: Message,
    due: Instant,
    give_up: Instant,
    pause: Duration,
}

/// The sending task: sends what arrives, and tries again what the server did not take, until the sender is
/// gone and nothing waits.
async fn run(
    transport: AsyncSmtpTransport<Tokio1Executor>,
    mut rx: mpsc::Receiver<Message>,
    retry_for: Duration,
) {
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        let next_due = waiting.iter().map(|w| w.due).min();
        tokio::select! {
            m = rx.recv(), if open => match m {
                Some(message) => {
                    let now = Instant::now();
                    let w = Waiting { message, due: now, give_up: now + retry_for, pause: FIRST_PAUSE };
                    if let Some(w) = attempt(&transport, w).await {
                        keep(&mut waiting, w);
                    }
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                let (due, later): (Vec<Waiting>, Vec<Waiting>) =
                    waiting.drain(..).partition(|w| w.due <= now);
                waiting = later;
                for w in due {
                    if let Some(w) = attempt(&transport, w).await {
                        keep(&mut waiting, w);
                    }
                }
            }
        }
    }
}

fn keep(waiting: &mut Vec<Waiting>, w: Waiting) {
    if waiting.len() >= QUEUE {
        tracing::error!(to = %recipients(&w.message), "too many mails waiting for a retry; one was dropped");
        return;
    }
    waiting.push(w);
}

fn recipients(m: &Message) -> String {
    m.envelope()
        .to()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One attempt; gives the mail back when it should be tried again.
async fn attempt(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    mut w: Waiting,
) -> Option<Waiting> {
    let to = recipients(&w.message);
    // lettre's own timeout covers the connection only; a server that accepts and then says nothing would hold
    // this task, and every later mail, for ever.
    let sent = match tokio::time::timeout(ATTEMPT_TIMEOUT, transport.send(w.message.clone())).await
    {
        Ok(r) => r.map_err(|e| (e.is_permanent(), e.to_string())),
        Err(_) => Err((
            false,
            format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
        )),
    };
    match sent {
        Ok(_) => {
            tracing::info!(to = %to, "mail sent");
            None
        }
        Err((true, e)) => {
            tracing::error!(to = %to, error = %e, "the mail server refused a mail; it is not tried again");
            None
        }
        Err((false, e)) => {
            let now = Instant::now();
            if now + w.pause > w.give_up {
                tracing::error!(to = %to, error = %e, "a mail could not be sent in time; given up");
                return None;
            }
            tracing::warn!(to = %to, error = %e, retry_in_secs = w.pause.as_secs(),
                "a mail could not be sent; it will be tried again");
            w.due = now + w.pause;
            w.pause = (w.pause * 2).min(MAX_PAUSE);
            Some(w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_stay_one_line() {
        assert_eq!(
            one_line("Reset\r\nBcc: x@evil.example"),
            "Reset  Bcc: x@evil.example"
        );
    }

    #[tokio::test]
    async fn bad_recipients_are_refused_before_anything_is_sent() {
        let m = Mailer::log_only();
        for to in ["not an address", "a@example.com\r\nBcc: x@evil.example", ""] {
            let e = m.send(Mail {
                to: to.into(),
                subject: "s".into(),
                text: "t".into(),
                html: "<p>t</p>".into(),
            });
            assert!(matches!(e, Err(MailError::BadAddress(_))), "{to:?}");
        }
    }
}
