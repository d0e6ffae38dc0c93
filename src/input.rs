//! Checks on text people type, before it reaches the database.

/// Whether `text` is free of control characters other than line breaks and tabs.
///
/// PostgreSQL refuses a NUL byte in text outright, and SQLite would store it and send
/// it back into pages; neither belongs in a post or an address, so they are refused
/// at the door with a message instead of failing deeper down.
pub fn is_plain_text(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

#[cfg(test)]
mod tests {
    use super::is_plain_text;

    #[test]
    fn control_characters_are_refused_but_line_breaks_are_not() {
        assert!(is_plain_text("héllo\nwörld\t→ 👋"));
        assert!(!is_plain_text("nul\0byte"));
        assert!(!is_plain_text("bell\u{7}"));
        assert!(!is_plain_text("c1\u{85}"));
    }
}
