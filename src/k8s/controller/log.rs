//! The controller's log: one line per message on standard error, with the
//! time and the level, as container log collectors expect.

fn line(level: &str, message: &str) {
    eprintln!(
        "{} {level} {message}",
        jiff::Timestamp::now()
            .round(jiff::Unit::Millisecond)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    );
}

pub fn info(message: &str) {
    line("INFO", message);
}

pub fn warn(message: &str) {
    line("WARN", message);
}

pub fn error(message: &str) {
    line("ERROR", message);
}
