//! The conformance suite on redial-smol.

redial_tests::conformance_tests!(redial_tests::adapters::SmolAdapter);
