//! backup (pending)
