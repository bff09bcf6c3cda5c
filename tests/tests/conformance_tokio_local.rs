//! The conformance suite on tokio current_thread + LocalSet, through the local driver (`Builder::spawn_local`).

redial_tests::conformance_tests!(redial_tests::adapters::TokioLocalAdapter);
