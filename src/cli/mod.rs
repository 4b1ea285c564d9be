//! cli (pending)
