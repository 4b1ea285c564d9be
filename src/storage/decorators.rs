//! Retry, read-only and fault-injection decorators (pending).
