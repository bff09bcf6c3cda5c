//! The protocol a trace records (without credentials) and rebuilds for a replay.

use super::*;

/// What stands in for a credential in a replay.
pub(super) const PLACEHOLDER: &str = "redacted-by-trace";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "p", rename_all = "snake_case")]
pub(super) enum ProtoRec {
    Line {
        ping: Option<String>,
        pong: Option<String>,
        peer_ping: Option<String>,
        pong_reply: String,
        /// Only the length: a greeting may carry a password.
        greeting_len: Option<usize>,
        greeting_replies: usize,
        handshake_errors: Vec<(String, String)>,
        max_line: usize,
        acks_in_order: bool,
    },
    Length {
        max_payload: usize,
        acks_in_order: bool,
    },
    /// Unframed bytes ([`RawCodec`]).
    Raw { max: usize },
    Resp {
        resp3: bool,
        /// `none`, `password` or `user_password`; never the password (nor the user).
        auth: String,
        database: Option<u32>,
        client_name: Option<String>,
        /// Extra setup commands; `null` for a secret one.
        setup: Vec<Option<String>>,
        max_frame: usize,
        max_depth: usize,
        max_elements: u64,
    },
    Nats {
        /// `none`, `user_password` or `token`; never the credentials.
        auth: String,
        name: Option<String>,
        echo: bool,
        inbox: Option<String>,
        max_control_line: usize,
        max_payload: usize,
    },
    /// WebSocket: header names only, never their values (they carry credentials).
    Ws {
        host: String,
        path: String,
        protocols: Vec<String>,
        header_names: Vec<String>,
        binary: bool,
        stay: bool,
        restart_ms: u64,
        max_message: usize,
        max_fragments: u32,
        max_header: usize,
    },
}

/// A protocol as a trace records it: which built-in protocol, and its settings without
/// credentials. Made by [`Recordable::recorded`].
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedProtocol(pub(super) ProtoRec);

impl fmt::Display for RecordedProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let acks = |a: bool| if a { "replies ack" } else { "no acks" };
        match &self.0 {
            ProtoRec::Line {
                acks_in_order,
                max_line,
                ..
            } => write!(
                f,
                "line codec (lines up to {max_line} B, {})",
                acks(*acks_in_order)
            ),
            ProtoRec::Length {
                max_payload,
                acks_in_order,
            } => write!(
                f,
                "length codec (payloads up to {max_payload} B, {})",
                acks(*acks_in_order)
            ),
            ProtoRec::Raw { max } => write!(f, "raw bytes (chunks up to {max} B)"),
            ProtoRec::Resp {
                resp3,
                auth,
                database,
                ..
            } => {
                write!(f, "RESP{}", if *resp3 { 3 } else { 2 })?;
                if auth != "none" {
                    write!(f, ", auth ({auth}, not recorded)")?;
                }
                if let Some(db) = database {
                    write!(f, ", database {db}")?;
                }
                Ok(())
            }
            ProtoRec::Ws {
                host,
                path,
                header_names,
                ..
            } => {
                write!(f, "WebSocket {host}{path}")?;
                if !header_names.is_empty() {
                    write!(
                        f,
                        ", headers {} (values not recorded)",
                        header_names.join(", ")
                    )?;
                }
                Ok(())
            }
            ProtoRec::Nats { auth, inbox, .. } => {
                write!(f, "NATS")?;
                if auth != "none" {
                    write!(f, ", auth ({auth}, not recorded)")?;
                }
                if let Some(i) = inbox {
                    write!(f, ", inbox {i}")?;
                }
                Ok(())
            }
        }
    }
}

/// A protocol a trace can record and replay: the built-in ones ([`Resp`], [`Nats`],
/// `Framed<LineCodec>`, `Framed<LengthCodec>`, `Framed<RawCodec>`).
pub trait Recordable: Protocol + Sized + 'static {
    /// The protocol's kind and settings, without credentials.
    fn recorded(&self) -> RecordedProtocol;
}

pub(super) fn opt_hex(v: &Option<Vec<u8>>) -> Option<String> {
    v.as_deref().map(hex)
}

impl Recordable for Framed<LineCodec> {
    fn recorded(&self) -> RecordedProtocol {
        let c = self.codec();
        RecordedProtocol(ProtoRec::Line {
            ping: opt_hex(&c.ping),
            pong: opt_hex(&c.pong),
            peer_ping: opt_hex(&c.peer_ping),
            pong_reply: hex(&c.pong_reply),
            greeting_len: c.greeting.as_ref().map(Vec::len),
            greeting_replies: c.greeting_replies,
            handshake_errors: c
                .handshake_errors
                .iter()
                .map(|(p, e)| (hex(p), net_name(*e)))
                .collect(),
            max_line: c.max_line,
            acks_in_order: self.acks() == AckMode::InOrder,
        })
    }
}

impl Recordable for Framed<LengthCodec> {
    fn recorded(&self) -> RecordedProtocol {
        RecordedProtocol(ProtoRec::Length {
            max_payload: self.codec().max_payload,
            acks_in_order: self.acks() == AckMode::InOrder,
        })
    }
}

impl Recordable for Framed<RawCodec> {
    fn recorded(&self) -> RecordedProtocol {
        RecordedProtocol(ProtoRec::Raw {
            max: self.codec().max,
        })
    }
}

impl Recordable for Resp {
    fn recorded(&self) -> RecordedProtocol {
        let limits = self.limits();
        RecordedProtocol(ProtoRec::Resp {
            resp3: self.version() == resp::Version::Resp3,
            auth: match self.auth() {
                None => "none",
                Some(None) => "password",
                Some(Some(_)) => "user_password",
            }
            .into(),
            database: self.database(),
            client_name: self.client_name().map(hex),
            setup: self.setup().map(|c| c.map(hex)).collect(),
            max_frame: limits.max_frame,
            max_depth: limits.max_depth,
            max_elements: limits.max_elements,
        })
    }
}

impl Recordable for Nats {
    fn recorded(&self) -> RecordedProtocol {
        RecordedProtocol(ProtoRec::Nats {
            auth: match self.auth_kind() {
                None => "none",
                Some(true) => "user_password",
                Some(false) => "token",
            }
            .into(),
            name: self.name().map(str::to_owned),
            echo: self.echo(),
            inbox: self.inbox().map(str::to_owned),
            max_control_line: self.max_control_line(),
            max_payload: self.max_payload(),
        })
    }
}

impl Recordable for redial_core::proto::ws::WebSocket {
    fn recorded(&self) -> RecordedProtocol {
        let l = self.limits();
        RecordedProtocol(ProtoRec::Ws {
            host: self.host().to_owned(),
            path: self.path().to_owned(),
            protocols: self.subprotocols().to_vec(),
            header_names: self.header_names().map(str::to_owned).collect(),
            binary: self.kind() == redial_core::proto::ws::Kind::Binary,
            stay: self.stays_connected(),
            restart_ms: self.restart_delay().as_millis() as u64,
            max_message: l.max_message,
            max_fragments: l.max_fragments,
            max_header: l.max_header,
        })
    }
}

pub(super) fn acks(in_order: bool) -> AckMode {
    if in_order {
        AckMode::InOrder
    } else {
        AckMode::None
    }
}

pub(super) fn opt_unhex(v: &Option<String>) -> Result<Option<Vec<u8>>, String> {
    v.as_deref().map(unhex).transpose()
}

impl ProtoRec {
    pub(super) fn ws(&self) -> Result<redial_core::proto::ws::WebSocket, String> {
        use redial_core::proto::ws::{WebSocket, WsLimits};
        let ProtoRec::Ws {
            host,
            path,
            protocols,
            header_names,
            binary,
            stay,
            restart_ms,
            max_message,
            max_fragments,
            max_header,
        } = self
        else {
            return Err("not WebSocket".into());
        };
        let mut p = WebSocket::new(host.clone(), path.clone())
            .with_restart_delay(std::time::Duration::from_millis(*restart_ms))
            .with_limits(WsLimits {
                max_message: *max_message,
                max_fragments: *max_fragments,
                max_header: *max_header,
            });
        for s in protocols {
            p = p.with_subprotocol(s.clone());
        }
        // The request is written, never read back: placeholders stand in for the values.
        for n in header_names {
            p = p.with_header(n.clone(), PLACEHOLDER);
        }
        if *binary {
            p = p.binary();
        }
        if *stay {
            p = p.stay_connected();
        }
        Ok(p)
    }

    pub(super) fn line(&self) -> Result<Framed<LineCodec>, String> {
        let ProtoRec::Line {
            ping,
            pong,
            peer_ping,
            pong_reply,
            greeting_len,
            greeting_replies,
            handshake_errors,
            max_line,
            acks_in_order,
        } = self
        else {
            return Err("not a line protocol".into());
        };
        if greeting_len.is_some_and(|n| n > MAX_LINE) {
            return Err("the recorded greeting is longer than a trace line".into());
        }
        let mut c = LineCodec::plain().with_max_line(*max_line);
        c.ping = opt_unhex(ping)?;
        c.pong = opt_unhex(pong)?;
        c.peer_ping = opt_unhex(peer_ping)?;
        c.pong_reply = unhex(pong_reply)?;
        // The greeting is written, never read: any bytes of its length will do.
        c.greeting = greeting_len.map(|n| vec![b'*'; n]);
        c.greeting_replies = *greeting_replies;
        c.handshake_errors = handshake_errors
            .iter()
            .map(|(p, e)| Ok((unhex(p)?, parse_net(e)?)))
            .collect::<Result<_, String>>()?;
        Ok(Framed::new(c).with_acks(acks(*acks_in_order)))
    }

    pub(super) fn resp(&self) -> Result<Resp, String> {
        let ProtoRec::Resp {
            resp3,
            auth,
            database,
            client_name,
            setup,
            max_frame,
            max_depth,
            max_elements,
        } = self
        else {
            return Err("not RESP".into());
        };
        let mut p = Resp::new();
        if *resp3 {
            p = p.resp3();
        }
        p = match auth.as_str() {
            "none" => p,
            "password" => p.with_auth(None, PLACEHOLDER.as_bytes()),
            "user_password" => p.with_auth(Some(b"user"), PLACEHOLDER.as_bytes()),
            other => return Err(format!("unknown RESP auth kind {other:?}")),
        };
        if let Some(db) = database {
            p = p.with_database(*db);
        }
        if let Some(name) = client_name {
            p = p.with_client_name(&unhex(name)?);
        }
        for s in setup {
            p = match s {
                Some(c) => p.with_setup(unhex(c)?, false),
                None => p.with_setup(resp::cmd(["ECHO", PLACEHOLDER]), true),
            };
        }
        Ok(p.with_limits(resp::Limits {
            max_frame: *max_frame,
            max_depth: *max_depth,
            max_elements: *max_elements,
        }))
    }

    pub(super) fn nats(&self) -> Result<Nats, String> {
        let ProtoRec::Nats {
            auth,
            name,
            echo,
            inbox,
            max_control_line,
            max_payload,
        } = self
        else {
            return Err("not NATS".into());
        };
        let mut p = match auth.as_str() {
            "none" => Nats::new(),
            "user_password" => Nats::new().with_user_password("user", PLACEHOLDER),
            "token" => Nats::new().with_token(PLACEHOLDER),
            other => return Err(format!("unknown NATS auth kind {other:?}")),
        };
        if let Some(n) = name {
            p = p.with_name(n);
        }
        if let Some(i) = inbox {
            p = p.with_inbox(i);
        }
        Ok(p.with_echo(*echo)
            .with_max_control_line(*max_control_line)
            .with_max_payload(*max_payload))
    }
}
