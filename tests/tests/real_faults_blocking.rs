//! Real faults (network-namespace partitions, real Redis and NATS) on redial-blocking.
//!
//! Needs root, iproute2, iptables (or nft), `redis-server` and `nats-server`; without them
//! each scenario prints `SKIPPED: ...`, or fails under `REDIAL_REQUIRE_REAL=1`.

redial_tests::real_fault_tests!(redial_tests::adapters::BlockingAdapter);
