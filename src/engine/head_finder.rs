//! The head finder: how well each head's attention pattern on one text
//! matches a template (previous token, induction, first-token sink, self,
//! broad attention, attention to one chosen token). Each score is a mean
//! over the query rows it is defined for, from the trace's weights.

use serde::Serialize;

use super::{HeadTrace, SquareMatrix, Trace};

/// One head's template scores on one text (weights are in [0, 1], so each score is too).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TemplateScores {
    pub layer: usize,
    pub head: usize,
    /// Mean weight on the previous token (queries i ≥ 1 → key i − 1).
    pub previous_token: f64,
    /// Mean weight on the first token (queries i ≥ 1 → key 0): the sink.
    pub first_token: f64,
    /// Mean weight on itself (queries i ≥ 1 → key i).
    #[serde(rename = "self")]
    pub self_token: f64,
    /// Mean over queries whose token occurred earlier of the weight on the
    /// tokens right after those earlier occurrences; `None` (absent from
    /// the JSON) when no token repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub induction: Option<f64>,
    /// Mean over queries with at least two visible keys of the entropy of
    /// their weights over ln(visible keys): 1 for uniform attention, 0 for one key.
    pub entropy: f64,
    /// With a chosen token: mean over queries that see it of the weight on
    /// its occurrences; `None` when no query sees it or none was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_token: Option<f64>,
}

/// The mean of `values`, `None` when there are none.
fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// What the template scores of every head on one text share: its token
/// ids, the chosen token (for "attends to token X") and, for each query,
/// the keys right after earlier copies of its token (induction).
pub struct Templates {
    ids: Vec<u32>,
    token: Option<u32>,
    after_copies: Vec<Vec<usize>>,
}

impl Templates {
    pub fn new(trace: &Trace, token: Option<u32>) -> Self {
        let ids: Vec<u32> = trace.tokens.iter().map(|t| t.id).collect();
        let after_copies =
            (0..ids.len()).map(|i| (0..i).filter(|&j| ids[j] == ids[i]).map(|j| j + 1).collect()).collect();
        Self { ids, token, after_copies }
    }

    /// One head's [`TemplateScores`] (`h` is head `head` of `layer`).
    pub fn score(&self, layer: usize, head: usize, h: &HeadTrace) -> TemplateScores {
        // Kept, or computed once for the head (every row's entropy reads it whole).
        self.score_weights(layer, head, h, &h.weights())
    }

    /// [`score`](Self::score) with the head's weights `w` given (computed
    /// by a caller that gives the thread back between pieces of rows).
    pub fn score_weights(&self, layer: usize, head: usize, h: &HeadTrace, w: &SquareMatrix) -> TemplateScores {
        let (ids, after_copies, t) = (&self.ids, &self.after_copies, self.ids.len());
        let later = 1..t;
        let visible = |i: usize| (0..t).filter(|&j| h.mask.allows(i, j)).count();
        let entropy = mean((0..t).filter(|&i| visible(i) >= 2).map(|i| {
            let e: f64 = w.row(i).iter().filter(|&&p| p > 0.0).map(|&p| -(p as f64) * (p as f64).ln()).sum();
            e / (visible(i) as f64).ln()
        }));
        let to_token = self.token.and_then(|x| {
            let seen = (0..t).filter(|&i| (0..=i).any(|j| ids[j] == x && h.mask.allows(i, j)));
            mean(seen.map(|i| (0..t).filter(|&j| ids[j] == x).map(|j| w.at(i, j) as f64).sum()))
        });
        TemplateScores {
            layer,
            head,
            previous_token: mean(later.clone().map(|i| w.at(i, i - 1) as f64)).unwrap_or(0.0),
            first_token: mean(later.clone().map(|i| w.at(i, 0) as f64)).unwrap_or(0.0),
            self_token: mean(later.map(|i| w.at(i, i) as f64)).unwrap_or(0.0),
            induction: mean(
                (0..t)
                    .filter(|&i| !after_copies[i].is_empty())
                    .map(|i| after_copies[i].iter().map(|&k| w.at(i, k) as f64).sum()),
            ),
            entropy: entropy.unwrap_or(0.0),
            to_token,
        }
    }
}

/// Every head's [`TemplateScores`] on `trace`, layer by layer; `token`
/// chooses the "attends to token X" template.
pub fn template_scores(trace: &Trace, token: Option<u32>) -> Vec<TemplateScores> {
    let templates = Templates::new(trace, token);
    let heads = trace
        .layers
        .iter()
        .enumerate()
        .flat_map(|(l, layer)| layer.heads().iter().enumerate().map(move |(h, head)| (l, h, head)));
    heads.map(|(layer, head, h)| templates.score(layer, head, h)).collect()
}

/// The largest side of a painted pattern (cells per side).
pub const MAX_PAINTED: usize = 16;

/// A pattern the user paints on a small `n × n` grid (row = query, column =
/// key, values ≥ 0), stretched over a text of any length: query `i` of `t`
/// reads grid row `i·n/t`, key `j` grid column `j·n/t` (nearest cell).
#[derive(Debug, Clone, PartialEq)]
pub struct PaintedPattern {
    n: usize,
    cells: Vec<f32>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatternError {
    #[error("a painted pattern is 1 to {MAX_PAINTED} cells a side, not {0}")]
    Side(usize),
    #[error("a painted pattern of side {n} has {want} cells, not {got}")]
    Cells { n: usize, want: usize, got: usize },
    #[error("painted cells are finite and ≥ 0; cell {0} is not")]
    Value(usize),
}

impl PaintedPattern {
    pub fn new(n: usize, cells: Vec<f32>) -> Result<Self, PatternError> {
        if n == 0 || n > MAX_PAINTED {
            return Err(PatternError::Side(n));
        }
        if cells.len() != n * n {
            return Err(PatternError::Cells { n, want: n * n, got: cells.len() });
        }
        if let Some(bad) = cells.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return Err(PatternError::Value(bad));
        }
        Ok(Self { n, cells })
    }

    pub fn side(&self) -> usize {
        self.n
    }

    pub fn cells(&self) -> &[f32] {
        &self.cells
    }

    /// The painted value over query `i`, key `j` of a `t`-token text.
    pub fn at(&self, i: usize, j: usize, t: usize) -> f32 {
        let cell = |x: usize| (x * self.n / t.max(1)).min(self.n - 1);
        self.cells[cell(i) * self.n + cell(j)]
    }
}

/// How well each head matches a painted pattern, layer by layer (index
/// `layer · n_head + head`): for every query row whose painted cells over its
/// visible keys are not all zero, the pattern row is normalised to sum 1 and
/// compared with the head's weights by their overlap Σ min(a, p) (1 when
/// equal, 0 when disjoint; the same as 1 − ½‖a − p‖₁); the score is the mean
/// over those rows, 0 when there are none.
pub fn painted_scores(trace: &Trace, pattern: &PaintedPattern) -> Vec<f64> {
    trace.layers.iter().flat_map(|l| l.heads()).map(|h| painted_score(h, pattern)).collect()
}

/// One head's score against a painted pattern ([`painted_scores`]).
pub fn painted_score(h: &HeadTrace, pattern: &PaintedPattern) -> f64 {
    painted_score_weights(h, &h.weights(), pattern)
}

/// [`painted_score`] with the head's weights `w` given.
pub fn painted_score_weights(h: &HeadTrace, w: &SquareMatrix, pattern: &PaintedPattern) -> f64 {
    let t = h.tokens();
    let rows = (0..t).filter_map(|i| {
        let visible: Vec<usize> = (0..t).filter(|&j| h.mask.allows(i, j)).collect();
        let total: f64 = visible.iter().map(|&j| pattern.at(i, j, t) as f64).sum();
        (total > 0.0)
            .then(|| visible.iter().map(|&j| (w.at(i, j) as f64).min(pattern.at(i, j, t) as f64 / total)).sum::<f64>())
    });
    mean(rows).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::analysis::induction_test;
    use crate::engine::init::random_weights;
    use crate::engine::sampling::Rng;
    use crate::engine::{forward_cpu, Mask};
    use crate::model::{Model, ModelConfig, Token};

    fn tokens(ids: &[u32]) -> Vec<Token> {
        ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
    }

    #[test]
    fn a_head_with_no_query_weights_attends_uniformly_and_scores_maximal_entropy() {
        let config = ModelConfig::tiny(2, 3, 12, 16, 20);
        let mut weights = random_weights(&config, 3);
        // Layer 1, head 2: Q columns (and bias) zero, so every score is 0 and the softmax uniform.
        let (d, width, d_head) = (config.n_embd, config.qkv_dim(), config.d_head());
        let block = &mut weights.blocks[1];
        for r in 0..d {
            block.attn_qkv_w.zero(r * width + 2 * d_head..r * width + 3 * d_head);
        }
        block.attn_qkv_b.data[2 * d_head..][..d_head].fill(0.0);
        let ids = [1, 5, 9, 2, 7, 5, 3];
        let trace = forward_cpu(&config, &weights, tokens(&ids), Mask::Causal).unwrap();
        let scores = template_scores(&trace, Some(5));
        let uniform = scores.iter().find(|s| s.layer == 1 && s.head == 2).unwrap();
        assert!((uniform.entropy - 1.0).abs() < 1e-6, "{uniform:?}");
        assert!(scores.iter().all(|s| s.entropy <= 1.0 + 1e-6 && s.entropy >= 0.0));
        // Uniform over i + 1 keys: previous, first and self are each the mean of 1/(i + 1).
        let want = (1..7).map(|i| 1.0 / (i as f64 + 1.0)).sum::<f64>() / 6.0;
        for got in [uniform.previous_token, uniform.first_token, uniform.self_token] {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // Token 5 sits at 1 and 5: queries 1..7 see it, with one or two copies.
        let to_5 = (1..7).map(|i| if i >= 5 { 2.0 } else { 1.0 } / (i as f64 + 1.0)).sum::<f64>() / 6.0;
        assert!((uniform.to_token.unwrap() - to_5).abs() < 1e-6);
        // Query 5 (token 5) has an earlier copy at 1: the key after it is 2.
        assert!((uniform.induction.unwrap() - 1.0 / 6.0).abs() < 1e-6);
        assert!(template_scores(&trace, Some(19))[0].to_token.is_none(), "no query sees token 19");
        let plain = forward_cpu(&config, &weights, tokens(&[1, 2, 3]), Mask::Causal).unwrap();
        assert!(template_scores(&plain, None)[0].induction.is_none(), "no token repeats");
    }

    #[test]
    fn induction_scores_on_a_repeated_sequence_are_near_the_eval_figures() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let model = Model::load_dir(&root.join("www/models/default")).unwrap();
        let length = 50;
        let report = induction_test(&model, length, 1, 0).unwrap();
        // The same sequence induction_test drew (seed 0, first draw).
        let mut rng = Rng::new(0);
        let half: Vec<u32> = (0..length).map(|_| (rng.next_u64() % model.config.vocab_size as u64) as u32).collect();
        let ids: Vec<u32> = half.iter().chain(&half).copied().collect();
        let trace = forward_cpu(&model.config, &model.weights, tokens(&ids), Mask::Causal).unwrap();
        let finder = template_scores(&trace, None);
        for (ours, eval) in finder.iter().zip(&report.heads) {
            let ours_induction = ours.induction.unwrap();
            assert!(
                (ours_induction - eval.induction).abs() < 0.05,
                "head {}.{}: {ours_induction:.3} vs eval {:.3}",
                ours.layer,
                ours.head,
                eval.induction
            );
        }
        assert!(finder.iter().any(|s| s.induction.unwrap() >= 0.3), "an induction head stands out");
    }

    #[test]
    fn a_painted_pattern_scores_one_on_the_head_it_was_painted_from_and_refuses_bad_grids() {
        let config = ModelConfig::tiny(2, 3, 12, 16, 20);
        let weights = random_weights(&config, 5);
        let ids = [1, 5, 9, 2, 7, 5, 3, 4];
        let trace = forward_cpu(&config, &weights, tokens(&ids), Mask::Causal).unwrap();
        // A diagonal painted at the text's own length is the "self" template,
        // up to the rows' normalisation (each row has one painted cell).
        let n = ids.len();
        let diagonal: Vec<f32> = (0..n * n).map(|c| if c / n == c % n { 1.0 } else { 0.0 }).collect();
        let pattern = PaintedPattern::new(n, diagonal).unwrap();
        let painted = painted_scores(&trace, &pattern);
        let finder = template_scores(&trace, None);
        assert_eq!(painted.len(), 2 * 3);
        for (p, s) in painted.iter().zip(&finder) {
            // Row 0 (weight 1 on itself) counts in the painted mean, not in "self".
            let want = (s.self_token * (n - 1) as f64 + 1.0) / n as f64;
            assert!((p - want).abs() < 1e-6, "{p} vs {want}");
        }
        // A head's own weights, painted at full size, overlap themselves fully.
        let h = &trace.layers[1].heads()[2];
        let own: Vec<f32> = (0..n * n).map(|c| h.weight(c / n, c % n)).collect();
        let own_score = painted_scores(&trace, &PaintedPattern::new(n, own).unwrap())[3 + 2];
        assert!((own_score - 1.0).abs() < 1e-5, "{own_score}");
        // A 2 × 2 grid stretched over 8 tokens: the lower-left quarter only.
        let quarter = PaintedPattern::new(2, vec![0.0, 0.0, 1.0, 0.0]).unwrap();
        assert_eq!(quarter.at(5, 1, 8), 1.0);
        assert_eq!(quarter.at(5, 5, 8), 0.0);
        assert_eq!(quarter.at(1, 1, 8), 0.0);
        assert!(painted_scores(&trace, &quarter).iter().all(|s| (0.0..=1.0 + 1e-9).contains(s)));
        assert_eq!(PaintedPattern::new(0, vec![]), Err(PatternError::Side(0)));
        assert_eq!(PaintedPattern::new(17, vec![0.0; 289]), Err(PatternError::Side(17)));
        assert_eq!(PaintedPattern::new(2, vec![0.0; 3]), Err(PatternError::Cells { n: 2, want: 4, got: 3 }));
        assert_eq!(PaintedPattern::new(1, vec![f32::NAN]), Err(PatternError::Value(0)));
        assert_eq!(PaintedPattern::new(1, vec![-1.0]), Err(PatternError::Value(0)));
        // All-zero painting: no row counts, every score 0.
        assert!(painted_scores(&trace, &PaintedPattern::new(1, vec![0.0]).unwrap()).iter().all(|&s| s == 0.0));
    }
}
