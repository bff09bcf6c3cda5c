//! The conformance suite on redial-blocking (a thread per session, no async runtime).

redial_tests::conformance_tests!(redial_tests::adapters::BlockingAdapter);
