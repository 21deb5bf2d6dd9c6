//! Attention masks: which keys a query may see.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// Query i sees keys 0..=i (decoders, GPT-2).
    Causal,
    /// Every query sees every key (encoders, BERT).
    Bidirectional,
    /// Query i sees keys i+1-w ..= i.
    Window(u32),
}

impl Mask {
    /// Whether query `row` may attend to key `col`.
    pub fn allows(self, row: usize, col: usize) -> bool {
        match self {
            Mask::Causal => col <= row,
            Mask::Bidirectional => true,
            Mask::Window(w) => col <= row && row - col < w as usize,
        }
    }

    /// The keys `lo..hi` among `0..t` that query `row` may attend to: every
    /// mask allows one contiguous run of them ([`Mask::allows`] of each),
    /// empty (`lo == hi`) where it allows none.
    pub fn keys(self, row: usize, t: usize) -> (usize, usize) {
        let hi = match self {
            Mask::Bidirectional => t,
            Mask::Causal | Mask::Window(_) => row.saturating_add(1).min(t),
        };
        let lo = match self {
            Mask::Window(w) => row.saturating_add(1).saturating_sub(w as usize).min(hi),
            _ => 0,
        };
        (lo, hi)
    }

    /// The mode and window width as the WGSL kernels receive them.
    pub fn gpu_code(self) -> (u32, u32) {
        match self {
            Mask::Causal => (0, 0),
            Mask::Bidirectional => (1, 0),
            Mask::Window(w) => (2, w),
        }
    }

    /// A sentence on what the mask means, for the page.
    pub fn explain(self) -> String {
        match self {
            Mask::Causal => "Causal (a decoder, like GPT): each token sees itself and the tokens before it, never \
                             later ones, so text can be generated left to right. This is how the model was trained."
                .into(),
            Mask::Bidirectional => "Bidirectional (an encoder, like BERT): every token sees every other, later ones \
                                    included. This model was trained causally, so these numbers show the mechanism, \
                                    not what it learned to do."
                .into(),
            Mask::Window(w) => format!(
                "Sliding window of {w} (Mistral, Longformer): each token sees only itself and the {} tokens before \
                 it, so attention costs T·{w} instead of T².",
                w.saturating_sub(1)
            ),
        }
    }

    /// Parses `causal`, `bidirectional` or `window:N`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "causal" => Some(Mask::Causal),
            "bidirectional" => Some(Mask::Bidirectional),
            _ => text.strip_prefix("window:").and_then(|w| w.parse().ok()).filter(|&w| w > 0).map(Mask::Window),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_run_allows_lets_through() {
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(1), Mask::Window(3), Mask::Window(0)] {
            for t in 0..7 {
                for row in 0..9 {
                    let (lo, hi) = mask.keys(row, t);
                    assert!(lo <= hi && hi <= t, "{mask:?} row {row} t {t}: {lo}..{hi}");
                    for col in 0..t {
                        assert_eq!(mask.allows(row, col), (lo..hi).contains(&col), "{mask:?} ({row}, {col}) t {t}");
                    }
                }
            }
        }
    }

    #[test]
    fn parse_accepts_the_three_forms_and_rejects_others() {
        assert_eq!(Mask::parse("causal"), Some(Mask::Causal));
        assert_eq!(Mask::parse("bidirectional"), Some(Mask::Bidirectional));
        assert_eq!(Mask::parse("window:3"), Some(Mask::Window(3)));
        assert_eq!(Mask::parse("window:0"), None);
        assert_eq!(Mask::parse("sideways"), None);
    }

    #[test]
    fn every_mask_is_explained_with_its_own_numbers() {
        assert!(Mask::Causal.explain().contains("never later ones"));
        assert!(Mask::Bidirectional.explain().contains("every token sees every other"));
        let w = Mask::Window(5).explain();
        assert!(w.contains("window of 5") && w.contains("the 4 tokens before it") && w.contains("T·5"), "{w}");
        assert!(Mask::Window(0).explain().contains("the 0 tokens"), "no underflow");
    }

    #[test]
    fn window_is_banded_below_the_diagonal() {
        let m = Mask::Window(2);
        assert!(m.allows(5, 5) && m.allows(5, 4));
        assert!(!m.allows(5, 3) && !m.allows(4, 5));
    }
}
