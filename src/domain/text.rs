//! Text a caller made up (a request path, a method, a claim value, a name that matched no
//! grammar), as it may be stored or echoed: bounded, with control and bidirectional-override
//! characters escaped, and marked when it was cut. No caller can make a record or an error
//! message longer than these bounds, or make it render as something it is not.

use std::fmt;

use serde::Serialize;

/// Ends a text that was cut.
const CUT: &str = "…[cut]";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallerText(String);

impl CallerText {
    /// The most bytes of a caller's text that a stored record keeps.
    pub const STORED_BYTES: usize = 256;
    /// The most bytes of a caller's text that an error message echoes.
    pub const ECHOED_BYTES: usize = 64;

    /// What a stored record keeps of `text`: at most [`CallerText::STORED_BYTES`] (plus the cut mark).
    pub fn stored(text: &str) -> CallerText {
        CallerText::bounded(text, CallerText::STORED_BYTES)
    }

    /// What an error message echoes of `text`: at most [`CallerText::ECHOED_BYTES`] (plus the cut mark).
    pub fn echoed(text: &str) -> CallerText {
        CallerText::bounded(text, CallerText::ECHOED_BYTES)
    }

    fn bounded(text: &str, max: usize) -> CallerText {
        if text.len() <= max && !text.chars().any(needs_escape) {
            return CallerText(text.to_owned());
        }
        let mut out = String::with_capacity(max + CUT.len());
        for c in text.chars() {
            let escape = needs_escape(c);
            let len = if escape {
                c.escape_unicode().len()
            } else {
                c.len_utf8()
            };
            if out.len() + len > max {
                out.push_str(CUT);
                break;
            }
            if escape {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
        CallerText(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters (NUL, newlines, ANSI escapes) and the bidirectional controls that make
/// text display in another order than it is stored.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for CallerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_text_is_kept_as_it_is() {
        assert_eq!(
            CallerText::stored("/v1/rings/orders").as_str(),
            "/v1/rings/orders"
        );
        assert_eq!(CallerText::echoed("é").as_str(), "é");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        let long = "é".repeat(1000);
        let stored = CallerText::stored(&long);
        assert!(stored.as_str().len() <= CallerText::STORED_BYTES + CUT.len());
        assert!(stored.as_str().ends_with(CUT));
        assert!(CallerText::echoed(&long).as_str().len() <= CallerText::ECHOED_BYTES + CUT.len());
        let exact = "x".repeat(CallerText::STORED_BYTES);
        assert_eq!(CallerText::stored(&exact).as_str(), exact);
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        let text = CallerText::stored("a\0b\n\u{1b}[31m\u{202e}c");
        assert_eq!(text.as_str(), "a\\u{0}b\\u{a}\\u{1b}[31m\\u{202e}c");
        assert!(!text.as_str().chars().any(needs_escape));
    }
}
