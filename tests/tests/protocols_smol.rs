//! Protocols framed by their grammar, against real `redis-server` and `nats-server`, on
//! redial-smol: binary-safe values and payloads, RESP2 and RESP3 aggregates, a user's `PING`
//! among heartbeats, subscriptions across kills and restarts, pipelined commands under
//! `CLIENT KILL` with every reply checked by value, headers and request/reply.
//!
//! Without the servers each scenario prints `SKIPPED: ...`, or fails under
//! `REDIAL_REQUIRE_REAL=1`.

redial_tests::real_protocol_tests!(redial_tests::adapters::SmolAdapter);
