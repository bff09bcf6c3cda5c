//! The conformance suite on monoio (thread-per-core: io_uring, or epoll), through the local driver (`Builder::spawn_local`).

redial_tests::conformance_tests!(redial_tests::adapters::MonoioAdapter);
