//! Object and namespace names as single segments of an API path.

/// Why `name` cannot be one segment of an API path, as the API server
/// rules (apimachinery's `IsValidPathSegmentName`): `.`, `..`, and names
/// with `/` or `%` would address something else. `None` when it can.
pub fn path_segment_problem(name: &str) -> Option<&'static str> {
    match name {
        "" => Some("it is empty"),
        "." | ".." => Some("it may not be '.' or '..'"),
        _ if name.contains('/') => Some("it may not contain '/'"),
        _ if name.contains('%') => Some("it may not contain '%'"),
        _ => None,
    }
}

/// `s` percent-encoded as one path segment: every byte but RFC 3986's
/// unreserved characters. kube puts names into request paths as they are.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_single_path_segments() {
        assert_eq!(path_segment("frontend-config.v1"), "frontend-config.v1");
        assert_eq!(path_segment("a?b#c d/e%f"), "a%3Fb%23c%20d%2Fe%25f");
        assert_eq!(path_segment("system:node"), "system%3Anode");
        for bad in ["", ".", "..", "a/b", "50%"] {
            assert!(path_segment_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["...", "a..b", "system:controller:x", "a?b"] {
            assert_eq!(path_segment_problem(good), None, "{good:?}");
        }
    }
}
