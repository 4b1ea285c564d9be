//! restore (pending)
