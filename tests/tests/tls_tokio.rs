//! TLS (rustls) and Unix sockets against real `redis-server` and `nats-server` on
//! redial-tokio: request/reply, `CLIENT KILL` and restarts ridden, a wrong CA given up at once,
//! server names sent and verified, certificate rotation, a half-open TLS connection found by
//! the heartbeat.
//!
//! Without the servers (or, for the half-open case, root and namespaces) each scenario prints
//! `SKIPPED: ...`, or fails under `REDIAL_REQUIRE_REAL=1`.

redial_tests::tls_tests!(redial_tests::adapters::TokioAdapter);
