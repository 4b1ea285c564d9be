//! In-memory backend (pending).
