//! How token text is shown: spaces, newlines and tabs made visible in token
//! chips, axis labels and exports; numbers and sizes in words.

pub use crate::model::plan::size_text;

/// `text` with ' ' as '·', '\n' as '↵' and '\t' as '⇥'.
pub fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' => '·',
            '\n' => '↵',
            '\t' => '⇥',
            c => c,
        })
        .collect()
}

/// A probability as a percentage with two significant digits where it is
/// small, so a token that was drawn never reads "0.0 %": 0.4 → "40.0 %",
/// 0.00123 → "0.12 %", 3.4e-6 → "0.00034 %"; exactly 0 → "0 %".
pub fn percent(p: f64) -> String {
    let v = 100.0 * p;
    if !v.is_finite() {
        return "–".to_owned();
    }
    if v == 0.0 {
        return "0 %".to_owned();
    }
    let decimals = if v.abs() >= 1.0 { 1 } else { (1 - v.abs().log10().floor() as i64).clamp(1, 12) as usize };
    format!("{v:.decimals$} %")
}

/// `n` with a thin space every three digits: 63488 → "63 488".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// A byte count with its exact figure, as the cost and cache panels show
/// it: "63 kB (63 488 bytes)", or "512 bytes" below a kilobyte; the short
/// part is [`size_text`], the page's one wording of sizes.
pub fn bytes(n: u64) -> String {
    if n < 1_000 {
        size_text(n)
    } else {
        format!("{} ({} bytes)", size_text(n), grouped(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawn_token_never_reads_zero_percent() {
        assert_eq!(percent(0.4), "40.0 %");
        assert_eq!(percent(0.01), "1.0 %");
        assert_eq!(percent(0.00123), "0.12 %");
        assert_eq!(percent(3.4e-6), "0.00034 %");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(f64::NAN), "–");
        for p in [1e-3, 1e-5, 1e-9, 2.5e-11] {
            assert_ne!(percent(p).trim_start_matches(['0', '.']), " %", "{p} shows a digit");
        }
    }

    #[test]
    fn byte_counts_read_alike_in_every_panel() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(63488), "63 kB (63\u{2009}488 bytes)");
        assert_eq!(bytes(3_750_000), "3.8 MB (3\u{2009}750\u{2009}000 bytes)");
        assert_eq!(grouped(1000), "1\u{2009}000");
        assert_eq!(grouped(999), "999");
    }

    #[test]
    fn whitespace_becomes_visible_and_the_rest_is_kept() {
        assert_eq!(visible(" the\ncat\t"), "·the↵cat⇥");
        assert_eq!(visible("naïve 猫"), "naïve·猫");
        assert_eq!(visible(""), "");
    }
}
