//! One writer owns stdout; settled lines, subscriptions and inbound data are printed
//! through it.

use super::*;

/// Everything the loop shares with its printers.
pub(super) struct Out {
    pub(super) tx: mpsc::Sender<Vec<u8>>,
    pub(super) json: bool,
}

impl Out {
    /// Queues a line for stdout (bytes: a line server's data is printed as it came, invalid
    /// UTF-8 included); `false` once stdout is gone.
    async fn print(&self, line: impl Into<Vec<u8>>) -> bool {
        self.tx.send(line.into()).await.is_ok()
    }
}

/// Prints a settled line's reply, or reports it undelivered. `false` once stdout is gone.
pub(super) async fn settle(
    out: &Out,
    preset: Preset,
    n: usize,
    line: &str,
    r: Result<Option<Reply>, Undelivered>,
    report: &impl Fn(usize, &str, &str, Option<&Undelivered>),
    undelivered: &mut u64,
) -> bool {
    match r {
        Ok(None) => true,
        Ok(Some(reply)) => {
            let text = if out.json {
                let mut v = serde_json::json!({"line": n, "request": line, "error": reply.refused});
                match preset {
                    Preset::Redis => {
                        v["reply"] = reply_text(preset, &reply.body, reply.refused).into()
                    }
                    _ => json_bytes(&mut v, "reply", &reply.body),
                }
                v.to_string().into_bytes()
            } else {
                reply_bytes(preset, &reply.body, reply.refused)
            };
            out.print(text).await
        }
        Err(u) => {
            *undelivered += 1;
            report(n, line, &format!("{:?}", u.outcome), Some(&u));
            true
        }
    }
}

/// Prints the messages of one NATS subscription, each on one line.
pub(super) async fn print_messages(
    mut sub: redial_tokio::Subscription,
    out: Arc<Out>,
    n: usize,
    line: String,
) {
    while let Some(m) = sub.next().await {
        let text = if out.json {
            let mut v = serde_json::json!({"line": n, "request": line});
            json_bytes(&mut v, "subject", &m.topic);
            json_bytes(&mut v, "payload", &m.body);
            if !m.reply_to.is_empty() {
                json_bytes(&mut v, "reply_to", &m.reply_to);
            }
            v.to_string()
        } else {
            format!("{} {}", escape(&m.topic), escape(&m.body))
        };
        if !out.print(text).await {
            return;
        }
    }
}

/// Prints what answers nothing: a line protocol's lines, RESP3 pushes.
pub(super) async fn print_inbound(mut inbound: Inbound, out: Arc<Out>, preset: Preset) {
    while let Some(body) = inbound.next().await {
        let text = if out.json {
            let mut v = serde_json::json!({"line": null});
            match preset {
                Preset::Redis => v["message"] = reply_text(preset, &body, false).into(),
                _ => json_bytes(&mut v, "message", &body),
            }
            v.to_string().into_bytes()
        } else {
            reply_bytes(preset, &body, false)
        };
        if !out.print(text).await {
            return;
        }
    }
}
