//! Errors as one-line messages for logs and users. A leaf module: the store, the credentials and
//! the file system all use it, and it uses none of them.

/// An error and its causes, as "outer: cause: root cause", without repeats or debug dumps.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}
