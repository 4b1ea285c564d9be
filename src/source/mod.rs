//! source (pending)
