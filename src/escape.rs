//! The one escaping function per output format. Every string that leaves the
//! program as XML or HTML (SVG, the snapshot page), as a CSV cell or inside a
//! URL goes through exactly one of these, so the rules live in one place:
//!
//! - [`xml`]: markup characters become entities; tab, newline and carriage
//!   return become character references (so a parser reads them back as they
//!   were, in attributes too, instead of normalising them); characters XML 1.0
//!   does not allow (other C0 controls, U+FFFE, U+FFFF) become U+FFFD, so
//!   the output always parses.
//! - [`csv_cell`]: a quoted cell; one that a spreadsheet would read as a
//!   formula (`=`, `+`, `-`, `@`, tab or carriage return first) starts with `'`.
//! - [`url_component`]: percent-encodes all but RFC 3986's unreserved characters.

/// Whether XML 1.0 allows `c` in a document (`Char` production), once escaped.
fn xml_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Text for XML or HTML content and (double- or single-quoted) attributes.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if xml_allows(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// One CSV cell, always quoted (RFC 4180), never a formula: a cell starting
/// with a character a spreadsheet reads as a formula gets a leading `'`
/// (OWASP's rule for CSV injection).
pub fn csv_cell(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    format!("\"{}{}\"", if formula { "'" } else { "" }, text.replace('"', "\"\""))
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so text
/// with `&`, `=`, `#`, quotes or markup round-trips and never breaks a link.
pub fn url_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_replaces_characters_xml_forbids() {
        assert_eq!(xml("a\u{FFFF}b\u{FFFE}c\u{0}d\u{1B}"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}");
        assert_eq!(xml("tab\tnl\ncr\r"), "tab&#9;nl&#10;cr&#13;");
        assert_eq!(xml("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;");
        assert_eq!(xml("\u{10FFFF}\u{E000}\u{D7FF}"), "\u{10FFFF}\u{E000}\u{D7FF}");
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("cat"), "\"cat\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(csv_cell(formula).starts_with("\"'"), "{formula:?}");
        }
        assert_eq!(csv_cell("a=b"), "\"a=b\"");
    }

    #[test]
    fn url_components_keep_only_unreserved_characters() {
        assert_eq!(url_component("a b&c=d#é~"), "a%20b%26c%3Dd%23%C3%A9~");
    }
}
