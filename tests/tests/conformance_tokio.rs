//! The conformance suite on redial-tokio.

redial_tests::conformance_tests!(redial_tests::adapters::TokioAdapter);
