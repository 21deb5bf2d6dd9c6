//! Presenter mode's script: the forward pass as a sequence of slides, from
//! the tokens through every stage of attention in every layer to the logits
//! and the sampled token, each with its one-line caption. Plain Rust (no web
//! APIs), tested natively; `ui::present` shows it and steps through it.

use crate::engine::sampling::Rng;
use crate::engine::AttentionStage;
use crate::share::Panel;

/// One step of the presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slide {
    /// The text cut into tokens.
    Tokens,
    /// Token embedding + position embedding: the residual stream enters layer 0.
    Embeddings,
    /// One stage of the selected head's attention in a layer.
    Attention { layer: usize, stage: AttentionStage },
    /// The residual stream after `layer`, going into the next layer.
    NextLayer { layer: usize },
    /// The last token's logits as the next-token distribution.
    Logits,
    /// A token drawn from that distribution.
    Sample,
    /// The text against a second prompt: A − B of the attention weights, and
    /// the next token's change (only when the page has a prompt B).
    Diff,
}

/// Every slide for a model of `n_layer` layers, in order; the diff last
/// when there is a second prompt (`diff`).
pub fn slides(n_layer: usize, diff: bool) -> Vec<Slide> {
    let mut out = vec![Slide::Tokens, Slide::Embeddings];
    for layer in 0..n_layer {
        if layer > 0 {
            out.push(Slide::NextLayer { layer: layer - 1 });
        }
        out.extend(AttentionStage::ALL.into_iter().map(|stage| Slide::Attention { layer, stage }));
    }
    out.extend([Slide::Logits, Slide::Sample]);
    if diff {
        out.push(Slide::Diff);
    }
    out
}

impl Slide {
    /// The part of the page the slide shows.
    pub fn panel(self) -> Panel {
        match self {
            Slide::Tokens => Panel::Tokens,
            Slide::Embeddings | Slide::NextLayer { .. } => Panel::Residual,
            Slide::Attention { .. } => Panel::Stage,
            Slide::Logits | Slide::Sample => Panel::Next,
            Slide::Diff => Panel::Diff,
        }
    }

    /// The layer the page shows on this slide, if it is about one.
    pub fn layer(self) -> Option<usize> {
        match self {
            Slide::Embeddings => Some(0),
            Slide::Attention { layer, .. } => Some(layer),
            Slide::NextLayer { layer } => Some(layer + 1),
            _ => None,
        }
    }

    /// The slide's title; attention slides name the layer and `head`, the head shown.
    pub fn title(self, head: usize) -> String {
        match self {
            Slide::Tokens => "Tokens".into(),
            Slide::Embeddings => "Embeddings".into(),
            Slide::Attention { layer, stage } => format!("Layer {layer} · head {head} · {}", stage.title()),
            Slide::NextLayer { layer } => format!("Into layer {}", layer + 1),
            Slide::Logits => "Logits → next-token distribution".into(),
            Slide::Sample => "Sample".into(),
            Slide::Diff => format!("Two prompts · head {head} · A − B"),
        }
    }

    /// What the slide shows, in one line.
    pub fn caption(self) -> String {
        match self {
            Slide::Tokens => "The tokenizer cuts the text into tokens, each an id in the model's vocabulary.".into(),
            Slide::Embeddings => "Each token becomes a vector: its token embedding plus its position's embedding \
                                  (x₀, the residual stream's start)."
                .into(),
            Slide::Attention { stage, .. } => match stage {
                AttentionStage::QPreRope => "Each token's query before RoPE turns it by its position.".into(),
                AttentionStage::KPreRope => "Each token's key before RoPE turns it by its position.".into(),
                AttentionStage::Q => "Each token's query: what it is looking for (ln₁(x)·W_Q).".into(),
                AttentionStage::K => "Each token's key: what it can be found by (ln₁(x)·W_K).".into(),
                AttentionStage::V => "Each token's value: what it passes on when attended to (ln₁(x)·W_V).".into(),
                AttentionStage::ScoresRaw => "Every query meets every key: S = Q·Kᵀ, a T × T table.".into(),
                AttentionStage::ScoresScaled => "Divided by √d_head so the softmax does not saturate.".into(),
                AttentionStage::ScoresMasked => {
                    "The mask sets −∞ where a token may not look (for a decoder: the future).".into()
                }
                AttentionStage::Weights => "Softmax turns each row into weights that sum to 1.".into(),
                AttentionStage::Output => {
                    "Each token's output is the weighted mix of the values: O = A·V, A the attention weights.".into()
                }
            },
            Slide::NextLayer { layer } => format!(
                "The heads' outputs and the MLP are added to the residual stream, which goes on into layer {}.",
                layer + 1
            ),
            Slide::Logits => "The last token's vector times the embedding matrix gives a score (logit) per \
                              vocabulary entry; softmax makes them probabilities."
                .into(),
            Slide::Sample => "The next token is drawn from that distribution (the top one at temperature 0).".into(),
            Slide::Diff => "The same head on a second prompt B: where its attention weights differ from A's, \
                            position by position, and how the next token's probabilities move."
                .into(),
        }
    }
}

/// The sample slide's draw: an index into `top` (the most likely tokens with
/// their probabilities, most likely first), drawn from them renormalised
/// (top-k sampling with k = `top.len()`) with `seed`; the first at temperature 0.
pub fn draw(top: &[(u32, f64)], temperature: f32, seed: u64) -> Option<usize> {
    let total: f64 = top.iter().map(|&(_, p)| p).sum();
    if top.is_empty() || temperature <= 0.0 || total <= 0.0 {
        return (!top.is_empty()).then_some(0);
    }
    let u = Rng::new(seed).next_f64() * total;
    let mut cumulative = 0.0;
    for (i, &(_, p)) in top.iter().enumerate() {
        cumulative += p;
        if u < cumulative {
            return Some(i);
        }
    }
    Some(top.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_seeded_greedy_at_zero_and_follows_the_probabilities() {
        let top = [(5, 0.5), (9, 0.3), (2, 0.2)];
        assert_eq!(draw(&top, 0.0, 123), Some(0));
        assert_eq!(draw(&[], 1.0, 1), None);
        assert_eq!(draw(&top, 1.0, 42), draw(&top, 1.0, 42));
        let mut counts = [0usize; 3];
        for seed in 0..3000 {
            counts[draw(&top, 1.0, seed).unwrap_or(0)] += 1;
        }
        for (c, p) in counts.iter().zip([0.5, 0.3, 0.2]) {
            assert!((*c as f64 / 3000.0 - p).abs() < 0.04, "{counts:?}");
        }
    }

    #[test]
    fn the_script_runs_from_tokens_through_every_layer_to_a_sample() {
        let s = slides(3, false);
        assert_eq!(s.len(), 2 + 3 * AttentionStage::ALL.len() + 2 + 2);
        assert_eq!(
            &s[..3],
            &[Slide::Tokens, Slide::Embeddings, Slide::Attention { layer: 0, stage: AttentionStage::Q }]
        );
        assert_eq!(&s[s.len() - 2..], &[Slide::Logits, Slide::Sample]);
        let into_1 = s.iter().position(|&x| x == Slide::NextLayer { layer: 0 }).unwrap_or(0);
        assert_eq!(s[into_1 - 1], Slide::Attention { layer: 0, stage: AttentionStage::Output });
        assert_eq!(s[into_1 + 1], Slide::Attention { layer: 1, stage: AttentionStage::Q });
        assert!(!s.contains(&Slide::NextLayer { layer: 2 }), "no layer after the last");
        for slide in &s {
            assert!(!slide.caption().is_empty() && !slide.title(0).is_empty());
            assert!(slide.layer().is_none_or(|l| l < 3), "{slide:?}");
        }
    }

    #[test]
    fn attention_titles_name_the_layer_and_head() {
        let slide = Slide::Attention { layer: 2, stage: AttentionStage::Weights };
        assert_eq!(slide.title(5), "Layer 2 · head 5 · Softmax weights");
        assert_eq!(Slide::Tokens.title(5), "Tokens");
    }

    #[test]
    fn a_second_prompt_adds_the_diff_slide_last() {
        let (plain, with) = (slides(2, false), slides(2, true));
        assert_eq!(with.len(), plain.len() + 1);
        assert_eq!(with[..plain.len()], plain[..]);
        assert_eq!(with.last(), Some(&Slide::Diff));
        assert_eq!(Slide::Diff.panel(), Panel::Diff);
        assert!(Slide::Diff.layer().is_none() && Slide::Diff.title(3).contains("head 3"));
    }

    #[test]
    fn one_layer_has_no_next_layer_slide() {
        let s = slides(1, false);
        assert_eq!(s.len(), 2 + AttentionStage::ALL.len() + 2);
        assert!(s.iter().all(|x| !matches!(x, Slide::NextLayer { .. })));
    }
}
