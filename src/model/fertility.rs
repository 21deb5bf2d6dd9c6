//! Tokenizer fertility: how many tokens a text costs, per character and per word,
//! and how much more the same sentence costs than in English.
//!
//! Words are counted so that scripts written without spaces compare fairly:
//! - a CJK character (Han ideograph, Hiragana, Katakana) is one word on its own;
//! - any other run of characters between whitespace, CJK characters and CJK
//!   punctuation (`、。，` and the rest of U+3000–U+303F, full-width punctuation)
//!   is one word, so "today," is one word and so is an emoji between spaces.
//!
//! Hangul is written with spaces and counts as ordinary words.

/// The cost of one text under one tokenizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fertility {
    /// Tokens the tokenizer made of the text.
    pub tokens: usize,
    /// Unicode scalar values (`char`s) in the text.
    pub chars: usize,
    /// Words by the rule in the module docs.
    pub words: usize,
    /// UTF-8 bytes of the text.
    pub bytes: usize,
    /// `tokens / chars`; 0 for an empty text.
    pub tokens_per_char: f64,
    /// `tokens / words`; 0 for a text without words.
    pub tokens_per_word: f64,
}

/// The fertility of `text` that a tokenizer split into `ids_len` tokens.
pub fn fertility(ids_len: usize, text: &str) -> Fertility {
    let chars = text.chars().count();
    let words = count_words(text);
    Fertility {
        tokens: ids_len,
        chars,
        words,
        bytes: text.len(),
        tokens_per_char: ratio(ids_len, chars),
        tokens_per_word: ratio(ids_len, words),
    }
}

/// How many times more tokens `sample` costs than `english`, the same sentence
/// in English under the same tokenizer (`sample.tokens / english.tokens`).
/// NaN when `english` has no tokens.
pub fn gap(sample: &Fertility, english: &Fertility) -> f64 {
    if english.tokens == 0 {
        return f64::NAN;
    }
    sample.tokens as f64 / english.tokens as f64
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn count_words(text: &str) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for c in text.chars() {
        if is_cjk_word_char(c) {
            words += 1;
            in_word = false;
        } else if c.is_whitespace() || is_cjk_punctuation(c) {
            in_word = false;
        } else if !in_word {
            words += 1;
            in_word = true;
        }
    }
    words
}

/// Han ideographs, Hiragana and Katakana: scripts written without spaces.
fn is_cjk_word_char(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{309F}' // Hiragana
        | '\u{30A0}'..='\u{30FF}' // Katakana
        | '\u{31F0}'..='\u{31FF}' // Katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}' // CJK extension A
        | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}' // CJK compatibility ideographs
        | '\u{FF66}'..='\u{FF9F}' // half-width Katakana
        | '\u{20000}'..='\u{3134F}' // CJK extensions B–G
    )
}

/// CJK symbols and punctuation, and full-width punctuation: they separate words.
fn is_cjk_punctuation(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303F}') || (matches!(c, '\u{FF01}'..='\u{FF65}') && !c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_counts_words_between_spaces() {
        let f = fertility(17, "The weather is nice today, so we are going for a walk in the park.");
        assert_eq!(f.words, 15);
        assert_eq!(f.chars, 66);
        assert_eq!(f.bytes, 66);
        assert!((f.tokens_per_word - 17.0 / 15.0).abs() < 1e-12);
        assert!((f.tokens_per_char - 17.0 / 66.0).abs() < 1e-12);
    }

    #[test]
    fn chinese_counts_each_character_and_not_its_punctuation() {
        let f = fertility(34, "今天天气很好，所以我们要去公园散步。");
        assert_eq!(f.words, 16);
        assert_eq!(f.chars, 18);
        assert_eq!(f.bytes, 54);
    }

    #[test]
    fn japanese_counts_kana_and_kanji_and_latin_runs() {
        // 8 CJK characters, then "GPT-2" as one word, then 2 more.
        assert_eq!(count_words("今日は天気がいい、GPT-2です。"), 8 + 1 + 2);
    }

    #[test]
    fn korean_and_emoji_count_between_spaces() {
        assert_eq!(count_words("오늘은 날씨가 좋아서"), 3);
        assert_eq!(count_words("The ☀️ is 😊 today"), 5);
    }

    #[test]
    fn empty_text_has_no_rates() {
        let f = fertility(0, "  \n");
        assert_eq!((f.words, f.tokens_per_char, f.tokens_per_word), (0, 0.0, 0.0));
        assert_eq!(fertility(0, "").chars, 0);
    }

    #[test]
    fn gap_is_the_token_ratio_to_english() {
        let english = fertility(10, "a b");
        assert_eq!(gap(&fertility(25, "x"), &english), 2.5);
        assert_eq!(gap(&english, &english), 1.0);
        assert!(gap(&english, &fertility(0, "")).is_nan());
    }
}
