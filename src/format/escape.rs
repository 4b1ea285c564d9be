//! File names and paths shown on a terminal.
//!
//! A name in a snapshot is whatever bytes the backed-up file system held. A
//! name with escape sequences could, printed as it is, rewrite the screen or
//! retitle the terminal, and a name with a newline could pass for two
//! entries. [`Escaped`] shows every byte so that it can be told apart:
//! printable UTF-8 as it is; `\` as `\\`; tab, newline and carriage return
//! as `\t`, `\n`, `\r`; other C0 controls, DEL and bytes that are not UTF-8
//! as `\xNN`; C1 controls, line and paragraph separators and bidirectional
//! overrides as `\u{NNNN}`. JSON output keeps exact names instead (JSON
//! escapes controls itself).

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes of a name or path, shown escaped for a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

/// A path shown escaped for a terminal.
pub fn path(p: &Path) -> Escaped<'_> {
    Escaped(p.as_os_str().as_bytes())
}

/// A name (any bytes) shown escaped for a terminal.
pub fn name(bytes: &[u8]) -> Escaped<'_> {
    Escaped(bytes)
}

/// An OS string shown escaped for a terminal.
pub fn os(s: &OsStr) -> Escaped<'_> {
    Escaped(s.as_bytes())
}

/// Characters that move the cursor, change the terminal or reorder text.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\t' => f.write_str("\\t")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    c if c.is_ascii_control() => write!(f, "\\x{:02x}", c as u32)?,
                    c if needs_escape(c) => write!(f, "\\u{{{:04x}}}", c as u32)?,
                    c => write!(f, "{c}")?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(bytes: &[u8]) -> String {
        Escaped(bytes).to_string()
    }

    #[test]
    fn printable_names_are_unchanged() {
        assert_eq!(shown(b"/etc/hosts"), "/etc/hosts");
        assert_eq!(
            shown("caf\u{e9} \u{65e5}\u{672c}.txt".as_bytes()),
            "caf\u{e9} \u{65e5}\u{672c}.txt"
        );
    }

    #[test]
    fn controls_and_invalid_bytes_are_escaped() {
        assert_eq!(shown(b"a\x1b]0;owned\x07b"), "a\\x1b]0;owned\\x07b");
        assert_eq!(shown(b"two\nlines\tand\rcr"), "two\\nlines\\tand\\rcr");
        assert_eq!(shown(b"del\x7f nul\x00"), "del\\x7f nul\\x00");
        assert_eq!(shown(b"back\\slash"), "back\\\\slash");
        assert_eq!(shown(b"bad\xff\xfe utf8"), "bad\\xff\\xfe utf8");
        // C1 controls (CSI is U+009B) and a right-to-left override.
        assert_eq!(shown("x\u{9b}31m".as_bytes()), "x\\u{009b}31m");
        assert_eq!(shown("a\u{202e}txt.exe".as_bytes()), "a\\u{202e}txt.exe");
        // Nothing escaped contains a control character any more.
        let all: Vec<u8> = (0..=255u8).collect();
        assert!(!shown(&all).chars().any(|c| c.is_control()));
    }
}
