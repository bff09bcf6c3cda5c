use super::*;

fn start(protocol: &impl Recordable) -> String {
    serde_json::to_string(&Line::Start {
        version: VERSION,
        config: Box::new((&Config::default()).into()),
        protocol: protocol.recorded().0,
    })
    .unwrap()
}

#[test]
fn hex_round_trips_and_rejects_garbage() {
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(unhex(&hex(&all)).unwrap(), all);
    assert!(unhex("abc").is_err());
    assert!(unhex("zz").is_err());
}

#[test]
fn config_round_trips() {
    let mut c = Config::default()
        .with_seed(7)
        .with_heartbeat(None)
        .with_request_timeout(Some(Duration::from_secs(3)));
    c.backoff = c.backoff.with_jitter(Jitter::Proportional(0.25));
    c.inbound.max_messages = 17;
    let rec = ConfigRec::from(&c);
    let json = serde_json::to_string(&rec).unwrap();
    let back: ConfigRec = serde_json::from_str(&json).unwrap();
    assert_eq!(back.to_config().unwrap(), c);
}

#[test]
fn protocols_round_trip_without_secrets() {
    let r = Resp::new()
        .resp3()
        .with_auth(Some(b"alice"), b"s3cret-pw")
        .with_database(3)
        .with_client_name(b"me")
        .with_setup(resp::cmd(["CLIENT", "NO-EVICT", "on"]), false)
        .with_setup(resp::cmd(["AUTH", "other-s3cret"]), true);
    let json = start(&r);
    assert!(!json.contains(&hex(b"s3cret")), "{json}");
    assert!(
        !json.contains("s3cret") && !json.contains("alice"),
        "{json}"
    );
    let back = r.recorded().0.resp().unwrap();
    assert_eq!(back.recorded(), r.recorded());

    let n = Nats::new()
        .with_token("tok-s3cret")
        .with_name("svc")
        .with_inbox("_INBOX.abc");
    let json = start(&n);
    assert!(
        !json.contains("s3cret") && !json.contains(&hex(b"s3cret")),
        "{json}"
    );
    assert_eq!(n.recorded().0.nats().unwrap().recorded(), n.recorded());
    let n = Nats::new().with_user_password("bob", "pw-s3cret");
    assert!(!start(&n).contains("s3cret"));

    let l = Framed::new(
        LineCodec::plain()
            .with_greeting(Some(b"AUTH s3cret"))
            .with_greeting_replies(1)
            .with_handshake_error(b"-ERR", NetError::PermissionDenied),
    )
    .with_acks(AckMode::InOrder);
    let json = start(&l);
    assert!(!json.contains(&hex(b"s3cret")), "{json}");
    let back = l.recorded().0.line().unwrap();
    assert_eq!(back.recorded(), l.recorded());
    assert_eq!(back.acks(), AckMode::InOrder);
}

fn replay_str(s: &str) -> Result<Replayed, TraceError> {
    replay(s.as_bytes())
}

#[test]
fn hostile_traces_are_typed_errors() {
    let st = start(&Resp::new());
    type Check = fn(&TraceError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (String::new(), |e| matches!(e, TraceError::Invalid { .. })),
        ("{not json".into(), |e| matches!(e, TraceError::Json { line: 1, .. })),
        (
            format!("{st}\n{{\"k\":\"explode\",\"t\":1}}\n"),
            |e| matches!(e, TraceError::UnknownKind { line: 2, kind } if kind == "explode"),
        ),
        (
            format!("{st}\n{{\"k\":\"poll\"}}\n"),
            |e| matches!(e, TraceError::Json { line: 2, .. }),
        ),
        (
            "{\"k\":\"poll\",\"t\":0,\"a\":\"x\"}\n".to_string(),
            |e| matches!(e, TraceError::Invalid { line: 1, .. }),
        ),
        (
            format!("{st}\n{st}\n"),
            |e| matches!(e, TraceError::Invalid { line: 2, .. }),
        ),
        (
            format!("{st}\n{{\"k\":\"enqueue\",\"t\":0,\"data\":\"zz\",\"delivery\":\"at_most_once\"}}\n"),
            |e| matches!(e, TraceError::Invalid { line: 2, .. }),
        ),
        (
            format!("{st}\n{{\"k\":\"input\",\"t\":0,\"input\":{{\"e\":\"dial_failed\",\"epoch\":1,\"error\":\"Gremlins\"}}}}\n"),
            |e| matches!(e, TraceError::Invalid { line: 2, .. }),
        ),
        (
            // An absurd length field cannot allocate: lengths are never trusted, only bytes.
            format!("{st}\n{{\"k\":\"read\",\"t\":0,\"epoch\":1,\"kept\":18446744073709551615,\"data\":\"\",\"used\":18446744073709551615,\"units\":1}}\n{{\"k\":\"nope\"}}\n"),
            |e| matches!(e, TraceError::UnknownKind { line: 3, .. }),
        ),
        (
            st.replace("\"version\":2", "\"version\":99"),
            |e| matches!(e, TraceError::Invalid { line: 1, .. }),
        ),
        (
            st.replace("\"queue_max_messages\":1024", "\"queue_max_messages\":0"),
            |e| matches!(e, TraceError::Invalid { line: 1, .. }),
        ),
    ];
    for (text, ok) in cases {
        let r = replay_str(&text);
        match r {
            Err(e) => assert!(ok(&e), "{text}: {e:?}"),
            Ok(r) => panic!("{text}: replayed {:?}", r.actions.len()),
        }
    }
    // A line over the bound is refused without being buffered whole.
    let mut long = st.clone();
    long.push('\n');
    long.push_str(&" ".repeat(MAX_LINE + 10));
    long.push_str("x\n");
    assert!(matches!(
        replay_str(&long),
        Err(TraceError::LineTooLong { line: 2, .. })
    ));
}

/// Records a session driven by hand through the real recorder, then replays it.
#[test]
fn scripted_trace_replays_identically_and_truncation_is_a_prefix() {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let script = |limit: u64| {
        let buf = Buf::default();
        let proto = Resp::new();
        let mut rec = Pending::<Resp>::new(Box::new(buf.clone()), limit).into_recorder(&proto);
        let cfg = Config::default();
        rec.start(&cfg);
        let mut s = Session::new(cfg, proto, Instant::ZERO).unwrap();
        let mut t = 0;
        let round = |s: &mut Session<Resp>, rec: &mut Recorder, t: u64| {
            let mut acts = Vec::new();
            loop {
                let a = s.poll(Instant::from_nanos(t));
                rec.poll(Instant::from_nanos(t), &a);
                let done = matches!(a, Action::Wait { .. });
                acts.push(a);
                if done {
                    return acts;
                }
            }
        };
        let now = |t| Instant::from_nanos(t);
        let m = resp::cmd(["GET", "a"]);
        rec.enqueue(now(t), &m, Delivery::AtMostOnce);
        s.enqueue(now(t), m, Delivery::AtMostOnce).unwrap();
        let mut epoch = Epoch::NONE;
        for step in 0..6 {
            t += 1000;
            for a in round(&mut s, &mut rec, t) {
                let input = match a {
                    Action::Resolve { epoch: e } => Input::Resolved {
                        epoch: e,
                        addrs: &[Addr::Local(1)],
                    },
                    Action::Dial { epoch: e, .. } => {
                        epoch = e;
                        Input::DialOk { epoch: e }
                    }
                    Action::Transmit { epoch: e } => {
                        rec.transmit();
                        s.encode_transmit(&mut Vec::new());
                        Input::Written { epoch: e }
                    }
                    _ => continue,
                };
                rec.input(now(t), &input);
                let _ = s.handle_input(now(t), input);
            }
            if step == 3 {
                // The value `+PONG` split over two reads: data, never a heartbeat.
                for part in [&b"$5\r\n+PO"[..], b"NG\r\n"] {
                    let used = s.handle_read(now(t), epoch, part, part.len(), &mut |_| {});
                    rec.read(now(t), epoch, part, part.len(), used, 0);
                    if used < part.len() {
                        // Kept for the next read, as the driver does.
                        let whole = [&part[used..], b"NG\r\n"].concat();
                        let mut units = 0;
                        let u = s.handle_read(now(t), epoch, &whole, 4, &mut |_| units += 1);
                        rec.read(now(t), epoch, &whole, 4, u, units);
                        break;
                    }
                }
            }
        }
        drop(rec);
        let v = buf.0.lock().unwrap().clone();
        v
    };
    let full = script(DEFAULT_MAX_BYTES);
    let r = replay(&full[..]).unwrap();
    assert!(r.recorded.len() > 5, "{}", String::from_utf8_lossy(&full));
    assert_eq!(r.first_mismatch(), None);
    assert_eq!(r.reads, 2);
    assert_eq!(r.read_mismatch, None, "{}", String::from_utf8_lossy(&full));
    assert!(r.identical());
    assert!(r.truncated.is_none());

    // A tampered read is caught as a read mismatch.
    let text = String::from_utf8(full.clone()).unwrap();
    let tampered = text.replace("\"units\":1", "\"units\":2");
    assert_ne!(tampered, text);
    let r = replay(tampered.as_bytes()).unwrap();
    assert!(r.read_mismatch.is_some());

    // A small cap: the trace ends with `truncated` and replays as a prefix.
    let cut = script(2048);
    assert!(cut.len() <= 2048, "{}", cut.len());
    let r = replay(&cut[..]).unwrap();
    assert!(r.truncated.as_deref().is_some_and(|t| t.contains("limit")));
    assert_eq!(r.first_mismatch(), None);
}

/// A session that moved off its endpoint and had a retry deferred by a budget replays
/// identically: both calls are in the trace.
#[test]
fn moves_and_deferred_attempts_replay() {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let proto = Resp::new();
    let mut rec =
        Pending::<Resp>::new(Box::new(buf.clone()), DEFAULT_MAX_BYTES).into_recorder(&proto);
    let cfg = Config::default();
    rec.start(&cfg);
    let mut s = Session::new(cfg, proto, Instant::ZERO).unwrap();
    let now = Instant::from_millis;
    let m = resp::cmd(["GET", "a"]);
    rec.enqueue(now(0), &m, Delivery::AtMostOnce);
    s.enqueue(now(0), m, Delivery::AtMostOnce).unwrap();
    let (mut resolves, mut moved) = (0, false);
    for step in 0..40u64 {
        let t = now(step * 100);
        let mut acts = Vec::new();
        loop {
            let a = s.poll(t);
            rec.poll(t, &a);
            let done = matches!(a, Action::Wait { .. });
            acts.push(a);
            if done {
                break;
            }
        }
        for a in acts {
            let input = match a {
                Action::Resolve { epoch } => {
                    resolves += 1;
                    if resolves == 2 {
                        // The budget refuses the first attempt after the move's failure.
                        rec.defer(t, epoch, Duration::from_millis(300));
                        assert!(s.defer_attempt(t, epoch, Duration::from_millis(300)));
                        continue;
                    }
                    Input::Resolved {
                        epoch,
                        addrs: &[Addr::Local(1)],
                    }
                }
                Action::Dial { epoch, .. } => Input::DialOk { epoch },
                Action::Transmit { epoch } => {
                    rec.transmit();
                    s.encode_transmit(&mut Vec::new());
                    Input::Written { epoch }
                }
                Action::Close { epoch, .. } => Input::Closed { epoch },
                _ => continue,
            };
            rec.input(t, &input);
            let _ = s.handle_input(t, input);
        }
        if !moved && s.state() == redial_core::State::Connected && step > 2 {
            moved = true;
            rec.move_off(t, Duration::from_millis(200));
            assert!(s.move_off(t, Duration::from_millis(200)));
        }
    }
    assert!(moved && resolves >= 3, "{resolves}");
    assert_eq!(s.stats().moves, 1);
    assert_eq!(s.stats().deferred, 1);
    drop(rec);
    let full = buf.0.lock().unwrap().clone();
    let text = String::from_utf8(full).unwrap();
    assert!(
        text.contains("\"k\":\"move\"") && text.contains("\"k\":\"defer\""),
        "{text}"
    );
    let r = replay(text.as_bytes()).unwrap();
    assert_eq!(r.first_mismatch(), None, "{text}");
    assert!(r.identical());
    // Without the two lines the replay takes other decisions.
    let stripped: String = text
        .lines()
        .filter(|l| !l.contains("\"k\":\"move\"") && !l.contains("\"k\":\"defer\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!replay(stripped.as_bytes()).unwrap().identical());
}
