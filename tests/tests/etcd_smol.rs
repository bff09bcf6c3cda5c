//! A fleet on a real etcd, on redial-smol. Needs `etcd` (Debian `etcd-server`); without it
//! each scenario prints `SKIPPED: ...`, or fails under `REDIAL_REQUIRE_REAL=1`.

redial_tests::fleet_tests!(redial_tests::adapters::SmolAdapter);
