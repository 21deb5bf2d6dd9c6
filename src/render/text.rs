//! How token text is shown: spaces, newlines and tabs made visible in token
//! chips, axis labels and exports.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_becomes_visible_and_the_rest_is_kept() {
        assert_eq!(visible(" the\ncat\t"), "·the↵cat⇥");
        assert_eq!(visible("naïve 猫"), "naïve·猫");
        assert_eq!(visible(""), "");
    }
}
