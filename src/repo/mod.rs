//! repo (pending)
