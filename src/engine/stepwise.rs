//! The CPU forward pass a step at a time: [`TraceRun`] computes one block per
//! [`TraceRun::step`], then the final norm and the LM head in pieces of rows,
//! so a caller on a thread that must stay responsive (the page's main
//! thread, which also handles typing) can give the thread back between steps
//! and drop a run a newer one made stale. [`forward_cpu`](super::forward_cpu)
//! and [`extend_cpu`](super::extend::extend_cpu) are a run taken to its end
//! at once, so a run in steps gives exactly their trace (tests below).

use super::extend::{append_layer, append_rows, shared_prefix, truncate};
use super::forward::{check_ids, embed, full_layer, logits, norm};
use super::{EngineError, LayerTrace, Mask, Matrix, Trace};
use crate::model::{ModelConfig, Token, Weights};

/// What the new rows are computed after.
enum Base<'a> {
    /// Nothing: every row is new.
    Nothing,
    /// The first rows of these: a trace kept whole, or cut to the shared rows.
    Kept(&'a Trace),
    Cut(Trace),
}

impl Base<'_> {
    fn trace(&self) -> Option<&Trace> {
        match self {
            Base::Nothing => None,
            Base::Kept(t) => Some(t),
            Base::Cut(t) => Some(t),
        }
    }
}

/// A forward pass on `tokens` in steps, reusing the rows a previous trace
/// shares with it (as [`extend_cpu`](super::extend::extend_cpu) does): one
/// block per step, then the LM head over at most
/// [`head_rows`](TraceRun::head_rows) rows per step.
pub struct TraceRun<'a> {
    config: &'a ModelConfig,
    weights: &'a Weights,
    tokens: Vec<Token>,
    mask: Mask,
    base: Base<'a>,
    /// The new rows' embeddings, then their residual stream after the blocks done so far.
    embeddings: Vec<f32>,
    x: Vec<f32>,
    layers: Vec<LayerTrace>,
    /// The new rows through the final norm, once every block is done.
    ln_f: Option<Vec<f32>>,
    /// The new rows' logits computed so far (whole rows).
    logits: Vec<f32>,
    head_rows: usize,
    /// The whole trace, when nothing was left to compute.
    same: Option<Trace>,
}

impl<'a> TraceRun<'a> {
    /// A run on `tokens` after `prev` (its rows shared with `tokens` are
    /// kept; `None` or nothing shared: a full pass). Checks the ids here, so
    /// the steps cannot fail.
    pub fn new(
        config: &'a ModelConfig,
        weights: &'a Weights,
        prev: Option<&'a Trace>,
        mut tokens: Vec<Token>,
        mask: Mask,
    ) -> Result<Self, EngineError> {
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        check_ids(config, &ids)?;
        if ids.is_empty() {
            return Err(EngineError::Empty);
        }
        let p = prev.map_or(0, |prev| shared_prefix(prev, &tokens, mask));
        let base = match prev {
            Some(prev) if p > 0 && p == prev.tokens.len() => Base::Kept(prev),
            Some(prev) if p > 0 => Base::Cut(truncate(prev, p)),
            _ => Base::Nothing,
        };
        let (base, same) = if p == tokens.len() {
            // Nothing new to compute: the kept rows, with the new tokens' text spans.
            let mut kept = match base {
                Base::Kept(prev) => prev.clone(),
                Base::Cut(cut) => cut,
                Base::Nothing => return Err(EngineError::Empty),
            };
            kept.tokens = std::mem::take(&mut tokens);
            (Base::Nothing, Some(kept))
        } else {
            (base, None)
        };
        let embeddings = if same.is_some() { Vec::new() } else { embed(config, weights, &ids[p..], p) };
        Ok(Self {
            config,
            weights,
            x: embeddings.clone(),
            embeddings,
            tokens,
            mask,
            base,
            layers: Vec::with_capacity(weights.blocks.len()),
            ln_f: None,
            logits: Vec::new(),
            head_rows: usize::MAX,
            same,
        })
    }

    /// At most `rows` rows (≥ 1) of the LM head per step (all of them by default).
    pub fn head_rows(mut self, rows: usize) -> Self {
        self.head_rows = rows.max(1);
        self
    }

    /// Rows this run computes (the rest are kept from the previous trace).
    pub fn new_rows(&self) -> usize {
        self.x.len() / self.config.n_embd.max(1)
    }

    fn logit_rows(&self) -> usize {
        self.logits.len() / self.config.vocab_size.max(1)
    }

    /// Steps taken and steps in all (blocks, then pieces of the LM head).
    pub fn progress(&self) -> (usize, usize) {
        if self.same.is_some() {
            return (0, 0);
        }
        let n = self.new_rows();
        let piece = self.head_rows.min(n).max(1);
        (self.layers.len() + self.logit_rows().div_ceil(piece), self.weights.blocks.len() + n.div_ceil(piece))
    }

    /// Whether every step is taken ([`finish`](Self::finish) then only assembles).
    pub fn is_done(&self) -> bool {
        self.same.is_some() || (self.ln_f.is_some() && self.logit_rows() == self.new_rows())
    }

    /// Takes the next step: a block, or a piece of the LM head. Nothing once done.
    pub fn step(&mut self) {
        if self.is_done() {
            return;
        }
        let (config, weights) = (self.config, self.weights);
        let l = self.layers.len();
        if let Some(block) = weights.blocks.get(l) {
            let (layer, x) = match self.base.trace().and_then(|t| t.layers.get(l)) {
                Some(old) => append_layer(config, block, old, &self.x, self.mask),
                None => full_layer(config, block, &self.x, self.mask),
            };
            self.layers.push(layer);
            self.x = x;
            return;
        }
        let (d, done) = (config.n_embd, self.logit_rows());
        let rows = self.head_rows.min(self.new_rows() - done);
        let ln_f = self.ln_f.get_or_insert_with(|| norm(config, &self.x, &weights.ln_f_g, &weights.ln_f_b));
        self.logits.extend(logits(config, weights, &ln_f[done * d..(done + rows) * d]));
    }

    /// Takes every step left and returns the trace of all the tokens.
    pub fn finish(mut self) -> Trace {
        while !self.is_done() {
            self.step();
        }
        if let Some(same) = self.same.take() {
            return same;
        }
        let (config, n) = (self.config, self.new_rows());
        let d = config.n_embd;
        let ln_f = self.ln_f.take().unwrap_or_default();
        match self.base.trace() {
            Some(prev) => Trace {
                embeddings: append_rows(&prev.embeddings, &self.embeddings),
                ln_f: append_rows(&prev.ln_f, &ln_f),
                logits: append_rows(&prev.logits, &self.logits),
                tokens: self.tokens,
                mask: self.mask,
                layers: self.layers,
            },
            None => Trace {
                embeddings: Matrix::from_vec(n, d, self.embeddings),
                ln_f: Matrix::from_vec(n, d, ln_f),
                logits: Matrix::from_vec(n, config.vocab_size, self.logits),
                tokens: self.tokens,
                mask: self.mask,
                layers: self.layers,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::extend::extend_cpu;
    use crate::engine::forward_cpu;
    use crate::engine::init::random_weights;

    fn tokens(ids: &[u32]) -> Vec<Token> {
        ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
    }

    /// Every stage of two traces bit for bit (their JSON is every stage's
    /// numbers), but the logits: the LM head in pieces of rows may round
    /// differently from one product of all rows (natively a few rows stream
    /// the weights), so they agree within 1e-5.
    fn assert_same(a: &Trace, b: &Trace, what: &str) {
        let without_logits = |t: &Trace| {
            let mut t = t.clone();
            t.logits = Matrix::from_vec(0, 0, Vec::new());
            serde_json::to_string(&t).unwrap()
        };
        assert!(without_logits(a) == without_logits(b), "a stage differs: {what}");
        assert_eq!((a.logits.rows, a.logits.cols), (b.logits.rows, b.logits.cols), "{what}");
        for (x, y) in a.logits.data.iter().zip(&b.logits.data) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "logit {x} vs {y}: {what}");
        }
    }

    #[test]
    fn a_run_in_steps_equals_the_run_at_once_for_both_families() {
        let mut llama = ModelConfig::llama((3, 6, 2, 8), 48, 40, 64, 61);
        llama.tie_word_embeddings = true;
        let gpt2 = ModelConfig::tiny(2, 4, 32, 64, 57);
        for config in [llama, gpt2] {
            let w = random_weights(&config, 3);
            let vocab = config.vocab_size as u32;
            let ids: Vec<u32> = (0..13).map(|i| (i * 7 + 3) % vocab).collect();
            let mut edited = ids.clone();
            edited[7] = (edited[7] + 1) % vocab;
            for mask in [Mask::Causal, Mask::Bidirectional] {
                let nine = forward_cpu(&config, &w, tokens(&ids[..9]), mask).unwrap();
                // A full run, then from the trace of the first 9 tokens: longer, shorter, edited, the same.
                let cases = [
                    (None, &ids[..]),
                    (Some(&nine), &ids[..]),
                    (Some(&nine), &ids[..5]),
                    (Some(&nine), &edited[..]),
                    (Some(&nine), &ids[..9]),
                ];
                for head_rows in [1, 2, 5, 100] {
                    for (prev, next) in cases {
                        let what = format!(
                            "{:?} {mask:?}, {head_rows} rows per step, {} tokens",
                            config.architecture,
                            next.len()
                        );
                        let mut run =
                            TraceRun::new(&config, &w, prev, tokens(next), mask).unwrap().head_rows(head_rows);
                        let (mut taken, total) = run.progress();
                        assert_eq!(taken, 0, "{what}");
                        while !run.is_done() {
                            run.step();
                            let (now, of) = run.progress();
                            assert!(now == taken + 1 && of == total, "one step at a time: {now}/{of}, {what}");
                            taken = now;
                        }
                        assert_eq!(taken, total, "{what}");
                        let want = match prev {
                            Some(prev) => extend_cpu(&config, &w, prev, tokens(next), mask).unwrap(),
                            None => forward_cpu(&config, &w, tokens(next), mask).unwrap(),
                        };
                        assert_same(&run.finish(), &want, &what);
                    }
                }
            }
        }
    }

    #[test]
    fn bad_ids_and_empty_texts_are_refused_before_any_step() {
        let config = ModelConfig::tiny(1, 2, 16, 8, 11);
        let w = random_weights(&config, 1);
        assert!(matches!(TraceRun::new(&config, &w, None, tokens(&[]), Mask::Causal), Err(EngineError::Empty)));
        assert!(matches!(
            TraceRun::new(&config, &w, None, tokens(&[1, 11]), Mask::Causal),
            Err(EngineError::IdOutOfVocab { id: 11, .. })
        ));
        assert!(matches!(
            TraceRun::new(&config, &w, None, tokens(&[1; 9]), Mask::Causal),
            Err(EngineError::TooLong { tokens: 9, limit: 8 })
        ));
    }
}
