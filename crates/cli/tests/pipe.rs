//! `redial pipe` end to end: a real child process against a local line server behind the
//! fault proxy, a real redis-server and a real nats-server, with hostile values.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redial_testkit::proxy::{FaultProxy, Mode};
use redial_testkit::servers::{LineServer, NatsServer, RedisServer};
use redial_testkit::wait::wait_until;

mod common;

use common::*;

#[test]
fn queues_through_restart_reports_in_doubt_and_exits_4() {
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let proxy = FaultProxy::start(server.addr());
    let mut child = redial()
        .args([
            "pipe",
            &proxy.addr().to_string(),
            "--interval",
            "200ms",
            "--timeout",
            "300ms",
        ])
        .args([
            "--initial",
            "20ms",
            "--cap",
            "200ms",
            "--ack",
            "reply",
            "--events",
            "json",
        ])
        .args(["--stable-after", "100ms", "--drain", "2s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redial pipe");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));

    writeln!(stdin, "a\nb").unwrap();
    wait_until(LONG, "a and b at the server", || {
        server.received() == ["a", "b"]
    });
    wait_until(LONG, "replies on stdout", || {
        stdout.lock().unwrap().len() == 2
    });
    assert_eq!(*stdout.lock().unwrap(), ["+OK a", "+OK b"]);

    // Restart: the port refuses while the server is down; typed lines wait in the queue.
    server.stop();
    proxy.set_mode(Mode::Refuse);
    wait_until(LONG, "disconnect noticed", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(r#""event":"disconnected""#))
    });
    writeln!(stdin, "c\nd").unwrap();
    wait_until(LONG, "refused attempts", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(r#""event":"attempt_failed""#) && l.contains("refused"))
    });
    assert_eq!(server.received(), ["a", "b"]);
    server.start_again();
    proxy.set_mode(Mode::PassThrough);
    wait_until(LONG, "queued lines flushed in order", || {
        server.received() == ["a", "b", "c", "d"]
    });

    // Their replies came (before the server goes silent, or they would be swallowed too).
    wait_until(LONG, "replies to c and d", || {
        stdout.lock().unwrap().len() == 4
    });

    // A line caught by a cut with no reply yet: reported in doubt, never resent.
    server.set_silent(true);
    writeln!(stdin, "x").unwrap();
    wait_until(LONG, "x at the server", || server.received().len() == 5);
    server.set_silent(false);
    proxy.reset_all();
    wait_until(LONG, "in-doubt report", || {
        stderr.lock().unwrap().iter().any(|l| {
            l.contains(r#""event":"undelivered""#)
                && l.contains("InDoubt")
                && l.contains(r#""request":"x""#)
                && l.contains(r#""line":5"#)
        })
    });
    drop(stdin); // EOF: drain and exit.
    let status = wait_exit(&mut child, LONG);
    assert_eq!(
        status.code(),
        Some(4),
        "one line undelivered: {:#?}",
        stderr.lock().unwrap()
    );
    assert_eq!(
        server.received().iter().filter(|l| *l == "x").count(),
        1,
        "x was not resent"
    );
    assert_eq!(
        *stdout.lock().unwrap(),
        ["+OK a", "+OK b", "+OK c", "+OK d"]
    );
    // Every JSON event line parses.
    for l in stderr.lock().unwrap().iter() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
}

#[test]
fn gives_up_at_once_with_exit_3_and_rejects_bad_arguments_with_exit_2() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = redial()
        .args([
            "pipe",
            &dead.to_string(),
            "--initial",
            "10ms",
            "--max-failures",
            "3",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // stdin stays open with a line waiting: the session must end by giving up, at once.
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "hello").unwrap();
    let stderr = collect(child.stderr.take().expect("stderr"));
    let t = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(5));
    // A failure limit given alone decides alone (it used to wait out the default 5-minute
    // budget as well).
    let took = t.elapsed();
    drop(stdin);
    wait_until(LONG, "stderr read", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("not delivered"))
    });
    let stderr = stderr.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        took < Duration::from_secs(1),
        "exit took {took:?}: {stderr}"
    );
    assert!(stderr.contains("gave up    after 3 failures"), "{stderr}");
    assert!(
        stderr.contains("line 1 not delivered (Abandoned(GaveUp)): hello"),
        "{stderr}"
    );

    for (args, says) in [
        (
            &["pipe", "127.0.0.1:1", "--interval", "0s"][..],
            "heartbeat.interval must be greater than zero",
        ),
        (&["pipe", "no-port-here"][..], "is not HOST:PORT"),
        (
            &["pipe", "127.0.0.1:1", "--interval", "5 parsecs"][..],
            "parsecs",
        ),
        (&["pipe", "127.0.0.1:1", "--bogus"][..], "--bogus"),
        (
            &["pipe", "127.0.0.1:1", "--ping", "A\r\nB"][..],
            "one non-empty line",
        ),
        (
            &["pipe", "127.0.0.1:1", "--ping", ""][..],
            "one non-empty line",
        ),
        (
            &["pipe", "127.0.0.1:1", "--preset", "redis", "--ping", "X"][..],
            "--preset plain",
        ),
        (
            &["pipe", "127.0.0.1:1", "--preset", "nats", "--ack", "none"][..],
            "--preset plain",
        ),
        (&["pipe", "127.0.0.1:1", "--preset", "telnet"][..], "telnet"),
        (&["pipe", "127.0.0.1:1", "--output", "xml"][..], "xml"),
    ] {
        let out = redial().args(args).output().expect("run");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn plain_lines_are_bytes_invalid_utf8_included() {
    let server = LineServer::start();
    let out = pipe_with(
        &[&server.addr().to_string(), "--events", "quiet"],
        b"ok1\nok2\n\xff\xfe\nok3\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_until(LONG, "four lines at the server", || {
        server.received().len() == 4
    });
    let got = server.received();
    assert_eq!(got[0], "ok1");
    assert_eq!(got[1], "ok2");
    assert_eq!(got[3], "ok3");
}

/// Redis's values that look like protocol, CR LF inside values, multi-line replies, a user's
/// own PING: every reply printed as redis-cli prints it, each answering its own line.
#[test]
fn redis_preset_prints_each_reply_as_redis_cli_does() {
    let redis = RedisServer::start(&[]).expect("redis-server is installed");
    let input = concat!(
        "SET a +PONG\n",
        "GET a\n",
        "SET crlf \"a\\r\\nb\"\n",
        "GET crlf\n",
        "SET e \"-ERR x\"\n",
        "GET e\n",
        "SET d $5\n",
        "GET d\n",
        "PING\n",
        "RPUSH l 1 \"two words\" $5\n",
        "LRANGE l 0 -1\n",
        "HSET h f v\n",
        "HGETALL h\n",
        "INCR a\n",
        "GET missing\n",
        "PING \"+PONG\"\n",
        "\n",
        "ECHO 'it''s'\n",
    );
    let out = pipe_with(
        &[
            &redis.addr().to_string(),
            "--preset",
            "redis",
            "--events",
            "quiet",
            "--interval",
            "50ms",
        ],
        input.as_bytes(),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // The last line is not a valid argument list (redis-cli says the same): reported, exit 4.
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("line 18: Invalid argument(s)"), "{stderr}");
    let want = [
        "OK",
        "\"+PONG\"",
        "OK",
        "\"a\\r\\nb\"",
        "OK",
        "\"-ERR x\"",
        "OK",
        "\"$5\"",
        "PONG",
        "(integer) 3",
        "1) \"1\"",
        "2) \"two words\"",
        "3) \"$5\"",
        "(integer) 1",
        "1) \"f\"",
        "2) \"v\"",
        "(error) ERR value is not an integer or out of range",
        "(nil)",
        "\"+PONG\"",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{stderr}");
}

#[test]
fn redis_output_json_names_the_line_each_reply_answers() {
    let redis = RedisServer::start(&[]).expect("redis-server is installed");
    let out = pipe_with(
        &[
            &redis.addr().to_string(),
            "--preset",
            "redis",
            "--events",
            "quiet",
            "--output",
            "json",
        ],
        b"SET k \"x\\r\\n+OK\"\nGET k\nINCR k\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let objs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(objs.len(), 3, "{objs:?}");
    assert_eq!(objs[0]["line"], 1);
    assert_eq!(objs[0]["request"], "SET k \"x\\r\\n+OK\"");
    assert_eq!(objs[0]["reply"], "OK");
    assert_eq!(objs[1]["line"], 2);
    assert_eq!(objs[1]["request"], "GET k");
    assert_eq!(objs[1]["reply"], "\"x\\r\\n+OK\"");
    assert_eq!(objs[1]["error"], false);
    assert_eq!(objs[2]["line"], 3);
    assert_eq!(objs[2]["error"], true);
}

/// A NATS responder on a plain socket: answers every request on `svc` with `+OK <payload>`.
fn responder(addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let mut s = TcpStream::connect(addr).expect("connect to nats");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB svc 1\r\nPING\r\n")
        .unwrap();
    // Subscribed once the server answers the PING.
    let mut r = BufReader::new(s.try_clone().unwrap());
    let t = Instant::now();
    let mut line = String::new();
    while !line.starts_with("PONG") {
        line.clear();
        let _ = r.read_line(&mut line);
        assert!(t.elapsed() < LONG, "no PONG from nats-server");
    }
    std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) => continue,
            }
            if line.starts_with("PING") {
                let _ = s.write_all(b"PONG\r\n");
            } else if let Some(rest) = line.strip_prefix("MSG ") {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let (reply, n): (&str, usize) = (f[2], f[3].parse().unwrap());
                let mut body = vec![0; n + 2];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let mut answer = b"+OK ".to_vec();
                answer.extend_from_slice(&body[..n]);
                let _ = s.write_all(format!("PUB {reply} {}\r\n", answer.len()).as_bytes());
                let _ = s.write_all(&answer);
                let _ = s.write_all(b"\r\n");
            }
        }
    })
}

/// NATS payloads that look like protocol (`PING`, `+OK`, `-ERR`) are data: each message is
/// printed on one line, and each reply answers its own `req` line.
#[test]
fn nats_preset_prints_messages_and_replies_by_value() {
    let nats = NatsServer::start(None, None).expect("nats-server is installed");
    let _responder = responder(nats.addr());
    for json in [false, true] {
        let mut args = vec![
            nats.addr().to_string(),
            "--preset".into(),
            "nats".into(),
            "--events".into(),
            "json".into(),
        ];
        if json {
            args.extend(["--output".into(), "json".into()]);
        }
        let mut child = redial()
            .arg("pipe")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        writeln!(stdin, "sub t.*").unwrap();
        wait_until(LONG, "connected", || {
            stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(r#""event":"connected""#))
        });
        // The subscription is written before anything queued after it.
        writeln!(
            stdin,
            "pub t.a PING\npub t.b +OK\npub t.c -ERR 'x'\nreq svc PONG\nreq svc hi there"
        )
        .unwrap();
        wait_until(LONG, "three messages and two replies", || {
            stdout.lock().unwrap().len() >= 5
        });
        drop(stdin);
        let status = wait_exit(&mut child, LONG);
        let got = stdout.lock().unwrap().clone();
        assert_eq!(
            status.code(),
            Some(0),
            "{got:?} {:?}",
            stderr.lock().unwrap()
        );
        if !json {
            let mut messages: Vec<&str> = got
                .iter()
                .filter(|l| l.starts_with("t."))
                .map(|s| s.as_str())
                .collect();
            messages.sort_unstable();
            assert_eq!(messages, ["t.a PING", "t.b +OK", "t.c -ERR 'x'"]);
            let replies: Vec<&String> = got.iter().filter(|l| !l.starts_with("t.")).collect();
            assert_eq!(replies, ["+OK PONG", "+OK hi there"]);
        } else {
            let objs: Vec<serde_json::Value> = got
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let msg = |subject: &str| {
                objs.iter()
                    .find(|o| o["subject"] == subject)
                    .unwrap_or_else(|| panic!("no {subject}: {objs:?}"))
            };
            assert_eq!(msg("t.a")["payload"], "PING");
            assert_eq!(msg("t.a")["request"], "sub t.*");
            assert_eq!(msg("t.a")["line"], 1);
            assert_eq!(msg("t.b")["payload"], "+OK");
            let reply = |line: u64| {
                objs.iter()
                    .find(|o| o["line"] == line && o.get("reply").is_some())
                    .unwrap_or_else(|| panic!("no reply to line {line}: {objs:?}"))
            };
            assert_eq!(reply(5)["reply"], "+OK PONG");
            assert_eq!(reply(5)["request"], "req svc PONG");
            assert_eq!(reply(6)["reply"], "+OK hi there");
        }
    }
    // A request nobody answers is an application answer, not a failure.
    let out = pipe_with(
        &[
            &nats.addr().to_string(),
            "--preset",
            "nats",
            "--events",
            "quiet",
        ],
        b"req nobody.home x\nfrob\n",
    );
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        ["(error) no responders"]
    );
    assert_eq!(out.status.code(), Some(4), "frob is not a NATS line");
    assert!(text(&out.stderr).contains("line 2: expected `pub SUBJECT PAYLOAD`"));
}

/// stdout closed under us: the session closes and the pipe exits with its own code, at once,
/// even with stdin still open.
#[test]
fn closed_stdout_exits_5_at_once() {
    let server = LineServer::start();
    server.set_reply(Some("+OK "));
    let mut child = redial()
        .args(["pipe", &server.addr().to_string(), "--events", "quiet"])
        .args(["--drain", "500ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // Nobody reads stdout any more.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "hello").unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(5));
    assert_eq!(server.received(), ["hello"]);
    drop(stdin);
}

/// A `--record` file that cannot be written is reported, and the exit code says so.
#[test]
fn record_write_errors_are_reported() {
    let server = LineServer::start();
    let out = pipe_with(
        &[
            &server.addr().to_string(),
            "--events",
            "quiet",
            "--record",
            "/dev/full",
        ],
        b"one\n",
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("recording to /dev/full failed"), "{err}");
    assert_eq!(server.received(), ["one"]);
}

/// A server floods lines while nobody reads our stdout: memory stays flat (the session stops
/// reading, TCP pushes back), and SIGTERM still ends the process within the drain.
#[test]
fn stalled_stdout_holds_the_socket_not_memory_and_sigterm_exits() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let chunk = [b"x".repeat(99), b"\n".to_vec()].concat().repeat(1000);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = s.write(&chunk) {
                    sent.fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };
    let mut child = redial()
        .args([
            "pipe",
            &addr.to_string(),
            "--drain",
            "1s",
            "--events",
            "human",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped()) // Never read.
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = collect(child.stderr.take().unwrap());
    wait_until(LONG, "reading paused", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("paused     reading"))
    });
    // The server is held back by TCP, far below what it would send unhindered.
    let before = sent.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let after = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(after < 64 << 20, "the server sent {after} bytes");
    assert!(
        after - before < 8 << 20,
        "still flowing: {before} -> {after}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kb < 64 << 10, "RSS {rss_kb} kB");
    let t = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(5));
    let took = t.elapsed();
    assert!(took <= Duration::from_secs(2), "exit took {took:?}");
    assert_eq!(status.code(), Some(0), "{:?}", stderr.lock().unwrap());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    flood.join().unwrap();
}
