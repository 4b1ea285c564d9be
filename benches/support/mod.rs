//! Helpers shared by the benchmarks that build synthetic repositories.

/// A positive number from the environment variable `name` (`_` may group
/// digits), or `default` when it is unset.
pub fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => match v.replace('_', "").parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={v:?}: expected a positive number"),
        },
        Err(_) => default,
    }
}

/// The value, or a panic naming `what` failed and why.
pub fn or_die<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}
