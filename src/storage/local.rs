//! Local directory backend (pending).
