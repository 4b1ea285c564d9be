//! Repository verification (pending).
