//! The peer models: a Redis-like server and a NATS-like server, small and honest.
//!
//! A peer reads what the session wrote with the protocol's grammar (never by position in a
//! transmit: it parses commands the way a server does), executes user messages the moment it
//! reads them, and queues its answers as [`Unit`]s. Every unit says what the session must make
//! of it ([`Meaning`]): the reply to one message, an out-of-band push, or nothing for the user
//! (a handshake step, our heartbeat's answer, a subscription confirmation, a server `PING`).
//! Replies carry bytes that name their request, and look like the protocol's own keywords
//! (`+PONG`, `PING`, `-ERR`), so a reply taken for a heartbeat, or the reverse, shows.

use std::collections::{BTreeMap, VecDeque};

use redial_core::proto::resp::Value;
use redial_core::MsgId;

/// The inbox prefix of the NATS sessions (requests are answered through `_INBOX.mc.<token>`).
pub const INBOX: &str = "_INBOX.mc";

/// The channel (RESP) or subject (NATS) the user subscribes to.
pub const CHANNEL: &str = "ch0";

/// Which protocol the session and the peer speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// RESP3 to a Redis-like peer: `HELLO 3` handshake, in-order replies, RESP3 pushes.
    Redis,
    /// The NATS client protocol: `INFO` first, `PONG` in order, requests by inbox key, `MSG`
    /// for subscriptions, and `PING`s of the server's own.
    Nats,
}

/// What the session must make of a unit the peer sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Meaning {
    /// The reply to this message: handed out as `Received::Reply { id, body }`.
    Reply(MsgId),
    /// An out-of-band message for the user's subscription: `Received::Message`.
    Push,
    /// Nothing for the user: a handshake step, our heartbeat's answer, a subscription
    /// confirmation, a server `PING`.
    Silent,
}

/// One protocol unit on its way from the peer to the session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unit {
    /// Its bytes on the wire.
    pub bytes: Vec<u8>,
    /// What the session must make of it.
    pub meaning: Meaning,
    /// The body the user must be handed (replies and pushes).
    pub body: Vec<u8>,
}

impl Unit {
    /// A unit with no user-visible body.
    fn silent(bytes: &[u8]) -> Unit {
        Unit {
            bytes: bytes.to_vec(),
            meaning: Meaning::Silent,
            body: Vec::new(),
        }
    }

    /// Where the first line ends (a bulk header, a `MSG` control line): a split that matters.
    pub fn first_line(&self) -> Option<usize> {
        let nl = self.bytes.iter().position(|&b| b == b'\n')? + 1;
        (nl < self.bytes.len()).then_some(nl)
    }
}

/// A request the peer read and has not answered yet, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Req {
    /// `HELLO 3`.
    Hello,
    /// The session's heartbeat (`PING`).
    Ping,
    /// A user message and the reply it gets.
    Msg(MsgId, Vec<u8>),
    /// `SUBSCRIBE ch0`.
    Subscribe,
}

/// The peer's side of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Peer {
    /// In-order requests not answered yet, oldest first.
    pub fifo: VecDeque<Req>,
    /// NATS: requests read and not answered (message, inbox token), in the order read.
    pub requests: Vec<(MsgId, u64)>,
    /// NATS: subscriptions by sid.
    pub sids: BTreeMap<u64, Vec<u8>>,
    /// RESP: whether `ch0` is subscribed on this connection.
    pub subscribed: bool,
    /// NATS: the server's `PING`s the session has not answered.
    pub pings_owed: u8,
    /// The peer went silent: it answers nothing and sends nothing more.
    pub silent: bool,
}

/// Finds the user message whose exact wire bytes these are, with the reply it gets.
pub type Lookup<'a> = &'a dyn Fn(&[u8]) -> Option<(MsgId, Vec<u8>)>;

/// What the peer made of bytes it read.
#[derive(Debug, Default)]
pub struct Read {
    /// User messages executed, in order (a message may appear twice if written twice).
    pub executed: Vec<MsgId>,
    /// A line the peer does not understand: the session wrote something no server accepts.
    pub garbage: Option<String>,
}

/// The reply a Redis-like peer gives to a user message: odd ones a `+PONG` (a stored value
/// that looks like our heartbeat's answer: only its position says whose it is), even ones a
/// bulk string that names the message and looks like protocol.
pub fn redis_payload(k: u64) -> (Vec<u8>, Vec<u8>) {
    use redial_core::proto::resp::cmd;
    if k % 2 == 1 {
        (cmd(["GET", &format!("k{k}")]), b"+PONG\r\n".to_vec())
    } else {
        let arg = format!("+PONG\r\n-ERR m{k}");
        let mut reply = format!("${}\r\n", arg.len()).into_bytes();
        reply.extend_from_slice(arg.as_bytes());
        reply.extend_from_slice(b"\r\n");
        (cmd(["ECHO", &arg]), reply)
    }
}

/// A NATS publish (or, with `request`, a request through the inbox) for message `k`.
pub fn nats_payload(k: u64, request: bool) -> Vec<u8> {
    use redial_core::proto::nats::{self, Nats};
    let subject = format!("svc.{k}");
    let body = format!("PING\r\n+OK m{k}");
    if request {
        Nats::new()
            .with_inbox(INBOX)
            .request(k, &subject, body.as_bytes())
            .expect("a valid request")
    } else {
        nats::publish(&subject, body.as_bytes()).expect("a valid publish")
    }
}

/// The body of the peer's reply to NATS request `id`: it names the request.
pub fn nats_reply_body(id: MsgId) -> Vec<u8> {
    format!("re:{}\r\nPONG\r\n+OK", id.get()).into_bytes()
}

impl Peer {
    /// A Redis-like peer reads `bytes`; `ours` finds the user message whose exact bytes these
    /// are, with its reply.
    pub fn read_redis(&mut self, bytes: &[u8], ours: Lookup<'_>) -> Read {
        let mut out = Read::default();
        let mut rest = bytes;
        while !rest.is_empty() {
            let Ok((v, n)) = Value::parse(rest) else {
                out.garbage = Some(format!("not RESP: {:?}", String::from_utf8_lossy(rest)));
                return out;
            };
            let whole = &rest[..n];
            rest = &rest[n..];
            if self.silent {
                continue;
            }
            if let Some((id, reply)) = ours(whole) {
                out.executed.push(id);
                self.fifo.push_back(Req::Msg(id, reply));
                continue;
            }
            let Value::Array(args) = v else {
                out.garbage = Some("a command that is not an array".into());
                return out;
            };
            let name = args
                .first()
                .and_then(Value::as_bytes)
                .unwrap_or(b"")
                .to_ascii_uppercase();
            match &name[..] {
                b"HELLO" => self.fifo.push_back(Req::Hello),
                b"PING" => self.fifo.push_back(Req::Ping),
                b"SUBSCRIBE" => self.fifo.push_back(Req::Subscribe),
                other => {
                    out.garbage = Some(format!(
                        "unknown command {:?}",
                        String::from_utf8_lossy(other)
                    ));
                    return out;
                }
            }
        }
        out
    }

    /// A NATS-like peer reads `bytes`; `ours` finds the user message of a `PUB`.
    pub fn read_nats(&mut self, bytes: &[u8], ours: &dyn Fn(&[u8]) -> Option<MsgId>) -> Read {
        let mut out = Read::default();
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") else {
                out.garbage = Some("a NATS operation without CR LF".into());
                return out;
            };
            let line = &rest[..nl];
            let words: Vec<&[u8]> = line
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .collect();
            let mut used = nl + 2;
            let verb = words.first().copied().unwrap_or(b"");
            match (verb, words.len()) {
                (b"CONNECT", _) => {}
                (b"PING", 1) => {
                    if !self.silent {
                        self.fifo.push_back(Req::Ping);
                    }
                }
                (b"PONG", 1) => {
                    if self.pings_owed == 0 {
                        out.garbage = Some("a PONG to a PING never sent".into());
                        return out;
                    }
                    self.pings_owed -= 1;
                }
                (b"PUB", 3 | 4) => {
                    let Some(total) = number(words[words.len() - 1]) else {
                        out.garbage = Some("a PUB without a size".into());
                        return out;
                    };
                    used += total + 2;
                    if rest.len() < used || &rest[used - 2..used] != b"\r\n" {
                        out.garbage = Some("a PUB payload not ended by CR LF".into());
                        return out;
                    }
                    let whole = &rest[..used];
                    let Some(id) = ours(whole) else {
                        out.garbage = Some("a PUB that is not the user's".into());
                        return out;
                    };
                    if !self.silent {
                        out.executed.push(id);
                        let token = (words.len() == 4).then(|| inbox_token(words[2])).flatten();
                        // A responder answers through the inbox, if it is subscribed.
                        if let Some(token) = token {
                            if self.sids.contains_key(&0) {
                                self.requests.push((id, token));
                            }
                        }
                    }
                }
                (b"SUB", 3) => {
                    let Some(sid) = number(words[2]) else {
                        out.garbage = Some("a SUB without a sid".into());
                        return out;
                    };
                    if !self.silent {
                        self.sids.insert(sid as u64, words[1].to_vec());
                    }
                }
                (b"UNSUB", 2 | 3) => {
                    if let Some(sid) = number(words[1]) {
                        self.sids.remove(&(sid as u64));
                    }
                }
                _ => {
                    out.garbage = Some(format!(
                        "the session wrote {:?}",
                        String::from_utf8_lossy(line)
                    ));
                    return out;
                }
            }
            rest = &rest[used..];
        }
        out
    }

    /// What a peer sends first on a new connection (NATS: `INFO`).
    pub fn greeting(proto: Proto) -> Option<Unit> {
        (proto == Proto::Nats).then(|| {
            Unit::silent(
                b"INFO {\"server_id\":\"mc\",\"max_payload\":1048576,\"headers\":true}\r\n",
            )
        })
    }

    /// The peer answers its oldest in-order request (RESP: anything; NATS: a `PONG`).
    pub fn answer_next(&mut self, proto: Proto) -> Option<Unit> {
        if self.silent {
            return None;
        }
        let req = self.fifo.pop_front()?;
        Some(match (proto, req) {
            (Proto::Nats, _) => Unit::silent(b"PONG\r\n"),
            (Proto::Redis, Req::Hello) => Unit::silent(b"%1\r\n+server\r\n+redis\r\n"),
            (Proto::Redis, Req::Ping) => Unit::silent(b"+PONG\r\n"),
            (Proto::Redis, Req::Subscribe) => {
                self.subscribed = true;
                Unit::silent(b">3\r\n$9\r\nsubscribe\r\n$3\r\nch0\r\n:1\r\n")
            }
            (Proto::Redis, Req::Msg(id, reply)) => Unit {
                body: reply.clone(),
                bytes: reply,
                meaning: Meaning::Reply(id),
            },
        })
    }

    /// The NATS peer answers request `i` (by key, in any order), through the inbox.
    pub fn answer_request(&mut self, i: usize) -> Option<Unit> {
        if self.silent || i >= self.requests.len() {
            return None;
        }
        let (id, token) = self.requests.remove(i);
        let body = nats_reply_body(id);
        let mut bytes = format!("MSG {INBOX}.{token} 0 {}\r\n", body.len()).into_bytes();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(b"\r\n");
        Some(Unit {
            bytes,
            meaning: Meaning::Reply(id),
            body,
        })
    }

    /// An out-of-band message for the user's subscription, number `n`, if the peer has one.
    pub fn push(&mut self, proto: Proto, n: u8) -> Option<Unit> {
        if self.silent {
            return None;
        }
        let body = format!("+PONG\r\n-ERR push{n}\r\n:1").into_bytes();
        let bytes = match proto {
            Proto::Redis => {
                if !self.subscribed {
                    return None;
                }
                let mut out = format!(
                    ">3\r\n$7\r\nmessage\r\n$3\r\n{CHANNEL}\r\n${}\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\r\n");
                out
            }
            Proto::Nats => {
                let sid = self
                    .sids
                    .iter()
                    .find(|(_, subject)| subject.as_slice() == CHANNEL.as_bytes())
                    .map(|(sid, _)| *sid)?;
                let mut out = format!("MSG {CHANNEL} {sid} {}\r\n", body.len()).into_bytes();
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\r\n");
                out
            }
        };
        Some(Unit {
            bytes,
            meaning: Meaning::Push,
            body,
        })
    }

    /// The NATS server's own `PING`.
    pub fn ping(&mut self) -> Option<Unit> {
        if self.silent {
            return None;
        }
        self.pings_owed += 1;
        Some(Unit::silent(b"PING\r\n"))
    }
}

fn number(w: &[u8]) -> Option<usize> {
    std::str::from_utf8(w).ok()?.parse().ok()
}

fn inbox_token(reply: &[u8]) -> Option<u64> {
    let rest = reply.strip_prefix(INBOX.as_bytes())?.strip_prefix(b".")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}
