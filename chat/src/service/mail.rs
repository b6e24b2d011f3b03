//! Sending e-mail through the configured SMTP relay (`PARLOR_SMTP_URL`): `smtp://host:port`
//! for a relay on a trusted network, `smtp://host:587?tls=required` for STARTTLS, or
//! `smtps://user:pass@host:465`.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where mail goes out, and who it is from.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub url: String,
    /// `Parlor <no-reply@example.com>`.
    pub from: String,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|e| format!("PARLOR_SMTP_URL: {e}"))?
            .build();
        let from = config
            .from
            .parse()
            .map_err(|e| format!("PARLOR_SMTP_FROM: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
