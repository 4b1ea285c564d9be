//! The conformance suite every backend passes (pending).
