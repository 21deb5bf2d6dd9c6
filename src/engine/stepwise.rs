//! The CPU forward pass a step at a time: [`TraceRun`] computes one block
//! (or, on a long text, one block on a piece of its rows) per
//! [`TraceRun::step`], then the final norm and the LM head in pieces of the
//! vocabulary, so a caller on a thread that must stay responsive (the page's main
//! thread, which also handles typing) can give the thread back between steps
//! and drop a run a newer one made stale. [`forward_cpu`](super::forward_cpu)
//! and [`extend_cpu`](super::extend::extend_cpu) are a run taken to its end
//! at once, so a run in steps gives exactly their trace (tests below).

use super::block_steps::BlockSteps;
use super::extend::{shared_prefix, truncate};
use super::forward::{check_ids, embed, head_piece_columns, norm};
use super::kernels;
use super::trace::HEADROOM_ROWS;
use super::{EngineError, LayerTrace, Mask, Matrix, SharedRows, Trace};
use crate::model::{ModelConfig, Token, Weights};

/// What the new rows are computed after.
enum Base<'a> {
    /// Nothing: every row is new.
    Nothing,
    /// The first `rows` rows of a trace: all of it when the text grew, the
    /// rows it shares with the new text when it lost or changed tokens after
    /// them. Read in place (a cut used to be copied out first, and then
    /// copied again with the new rows appended: a third of a backspace's
    /// time on SmolLM2).
    Prefix(&'a Trace, usize),
}

impl<'a> Base<'a> {
    fn prefix(&self) -> Option<(&'a Trace, usize)> {
        match self {
            Base::Nothing => None,
            Base::Prefix(t, rows) => Some((t, *rows)),
        }
    }
}

/// Values of the logits a run in steps allocates per step (8 MB).
const FILL_VALUES: usize = 1 << 21;

/// A forward pass on `tokens` in steps, reusing the rows a previous trace
/// shares with it (as [`extend_cpu`](super::extend::extend_cpu) does): each
/// block on every new row, a piece of about
/// [`block_flops`](TraceRun::block_flops) per step (a piece of a product's
/// columns, or of attention's query rows: [`BlockSteps`]), then the LM head
/// on every new row for a piece of
/// the vocabulary per step, of about [`head_flops`](TraceRun::head_flops)
/// (each entry of the table read once; a piece of rows at a time read the
/// whole table once per piece, 113 MB of SmolLM2's f32 table per step).
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
    /// The block under way.
    block: Option<BlockSteps<'a>>,
    /// The new rows through the final norm, once every block is done.
    ln_f: Option<Vec<f32>>,
    /// The logits (allocated from the LM head's first step on): the new
    /// rows', appended in the end to the previous trace's buffer when it has
    /// room for them there ([`super::SharedRows::extends_in_place`]); else the kept
    /// rows' copied first, then the new rows', so that the trace takes the
    /// vector as it is (a 267-row SmolLM2 paste appended its 52 MB of new
    /// logits in one copy: an 87 ms task). How many of the new rows'
    /// columns are computed.
    logits: Vec<f32>,
    /// Where the new rows' logits begin in `logits`: 0, or after the kept rows'.
    logits_from: usize,
    logit_cols: usize,
    head_flops: u64,
    /// Values of the logits allocated per step (kept rows copied, new rows
    /// zeroed): a whole 267-row SmolLM2 LM head zeroed at once was one step
    /// of ~100 ms (fresh WebAssembly pages touched).
    fill: usize,
    block_flops: u64,
    /// Whether the trace keeps each head's T×T weights (see
    /// [`keeping_weights`](Self::keeping_weights)).
    keep_weights: bool,
    /// Whether the trace keeps every position's logits (see
    /// [`every_logits`](Self::every_logits)).
    every_logits: bool,
    /// Whether the trace keeps each layer's norms, stream and MLP hidden
    /// layer (see [`keeping_stages`](Self::keeping_stages)).
    keep_stages: bool,
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
        // After a trace with its last position's logits alone, the run keeps the last alone too.
        let last_row_alone = p > 0 && prev.is_some_and(|prev| !prev.keeps_every_logits_row());
        let base = match prev {
            Some(prev) if p > 0 => Base::Prefix(prev, p),
            _ => Base::Nothing,
        };
        let (base, same) = if p == tokens.len() {
            // Nothing new to compute: the kept rows, with the new tokens' text spans.
            let mut kept = match base {
                Base::Prefix(prev, p) if p == prev.tokens.len() => prev.clone(),
                Base::Prefix(prev, p) => truncate(prev, p),
                Base::Nothing => return Err(EngineError::Empty),
            };
            kept.tokens = std::mem::take(&mut tokens);
            (Base::Nothing, Some(kept))
        } else {
            (base, None)
        };
        // A cut of a trace with its last position's logits alone (a
        // backspace) has no logits row: the LM head runs on its last row
        // (the kept final norm's), the rest is the cut.
        let ln_f = same.as_ref().filter(|t| t.logits.rows == 0).map(|t| t.ln_f.row(p - 1).to_vec());
        let embeddings = if same.is_some() { Vec::new() } else { embed(config, weights, &ids[p..], p) };
        let new_logits = (ids.len() - p) * config.vocab_size;
        let logits_from = match base.prefix() {
            Some((t, p)) if !last_row_alone && !t.logits.data.extends_in_place(p * t.logits.cols, new_logits) => {
                p * t.logits.cols
            }
            _ => 0,
        };
        Ok(Self {
            config,
            weights,
            x: embeddings.clone(),
            embeddings,
            tokens,
            mask,
            base,
            layers: Vec::with_capacity(weights.blocks.len()),
            block: None,
            ln_f,
            logits: Vec::new(),
            logits_from,
            logit_cols: 0,
            head_flops: u64::MAX,
            fill: usize::MAX,
            block_flops: u64::MAX,
            keep_weights: true,
            every_logits: !last_row_alone,
            keep_stages: true,
            same,
        })
    }

    /// About `flops` of the LM head per step: every new row against a
    /// piece of the vocabulary ([`head_columns`](Self::head_columns)); the
    /// whole head in one step by default.
    /// The logits are then allocated [`FILL_VALUES`] values per step too.
    pub fn head_flops(mut self, flops: u64) -> Self {
        self.head_flops = flops.max(1);
        self.fill = FILL_VALUES;
        self
    }

    /// Values in the logits once allocated.
    fn logit_values(&self) -> usize {
        self.logits_from + self.logit_rows() * self.config.vocab_size
    }

    /// Steps that allocate the logits: taken so far (once the LM head has
    /// begun), and in all. None unbounded: the first piece of the LM head
    /// allocates them whole.
    fn fill_steps(&self) -> (usize, usize) {
        if self.fill == usize::MAX {
            return (0, 0);
        }
        let fill = self.fill.max(1);
        let all = self.logit_values().div_ceil(fill).max(1);
        let taken = if self.ln_f.is_some() { self.logits.len().div_ceil(fill).max(1) } else { 0 };
        (taken, all)
    }

    /// Vocabulary entries per step of the LM head.
    fn head_columns(&self) -> usize {
        let c = self.config;
        head_piece_columns(self.logit_rows(), c.n_embd, c.vocab_size, self.head_flops)
    }

    /// About `flops` of a block per step ([`BlockSteps`]: a piece of a
    /// product's columns for every new row, or attention on a piece of the
    /// query rows); a phase of the block per step by default.
    pub fn block_flops(mut self, flops: u64) -> Self {
        self.block_flops = flops.max(1);
        self
    }

    /// Whether the trace keeps each head's T×T weights (by default it does;
    /// so does it only where the trace it extends kept them). Without, it
    /// keeps each row's softmax max and sum, and a weight is computed from
    /// Q, K and them when read, bit for bit the same (`HeadTrace::weight`):
    /// a long text's trace then holds no T×T matrix.
    pub fn keeping_weights(mut self, keep: bool) -> Self {
        self.keep_weights = keep;
        self
    }

    /// Whether the trace keeps every position's logits (by default it does;
    /// so does it only where the trace it extends kept them). Without, the
    /// LM head runs on the last position alone and the trace holds its row
    /// ([`Trace::logits_at`]): a long text's logits were 18 % of a SmolLM2
    /// trace and of its first run's work, and the page reads the last row.
    pub fn every_logits(mut self, every: bool) -> Self {
        if !every {
            self.every_logits = false;
            self.logits_from = 0;
            if let Some(same) = self.same.as_mut().filter(|t| t.logits.rows > 1) {
                let last = same.logits.rows - 1;
                same.logits = Matrix::from_vec(1, same.logits.cols, same.logits.row(last).to_vec());
            }
        }
        self
    }

    /// Whether the trace keeps each layer's norms (ln_1, ln_2), residual
    /// stream (resid_mid, resid_post) and MLP hidden layer (by default it
    /// does; so does it only where the trace it extends kept them).
    /// Without, they are computed when read from the embeddings and each
    /// layer's attention and MLP outputs ([`Trace::stream_rows`]): half of
    /// a SmolLM2 trace without its weights and logits (52 %).
    pub fn keeping_stages(mut self, keep: bool) -> Self {
        self.keep_stages = keep;
        self
    }

    /// Rows the LM head runs on: every new row, or the last alone.
    fn logit_rows(&self) -> usize {
        if self.same.is_some() {
            1 // (a cut's last row, when it has none: `cut_lacks_logits`)
        } else if self.every_logits {
            self.new_rows()
        } else {
            self.new_rows().min(1)
        }
    }

    /// Whether the run is a cut of a trace with its last position's logits
    /// alone, whose new last row's logits the LM head computes.
    fn cut_lacks_logits(&self) -> bool {
        self.same.as_ref().is_some_and(|t| t.logits.rows == 0)
    }

    /// Rows this run computes (the rest are kept from the previous trace).
    pub fn new_rows(&self) -> usize {
        self.x.len() / self.config.n_embd.max(1)
    }

    /// Steps taken and steps in all (blocks, then pieces of the LM head).
    pub fn progress(&self) -> (usize, usize) {
        if self.same.is_some() && !self.cut_lacks_logits() {
            return (0, 0);
        }
        let n = self.new_rows();
        let (vocab, piece) = (self.config.vocab_size, self.head_columns());
        let t = self.tokens.len();
        let per_block = BlockSteps::count(self.config, n, t, self.block_flops);
        let (filled, fills) = self.fill_steps();
        let block = self.block.as_ref().map_or(0, BlockSteps::taken);
        let taken = self.layers.len() * per_block + block + filled + self.logit_cols.div_ceil(piece);
        let blocks = if self.same.is_some() { 0 } else { self.weights.blocks.len() };
        (taken, blocks * per_block + fills + vocab.div_ceil(piece))
    }

    /// Whether every step is taken ([`finish`](Self::finish) then only assembles).
    pub fn is_done(&self) -> bool {
        (self.same.is_some() && !self.cut_lacks_logits())
            || (self.ln_f.is_some()
                && self.logit_cols == self.config.vocab_size
                && self.logits.len() == self.logit_values())
    }

    /// Takes the next step: a block, or a piece of the LM head. Nothing once done.
    pub fn step(&mut self) {
        if self.is_done() {
            return;
        }
        let (config, weights) = (self.config, self.weights);
        let l = self.layers.len();
        if let Some(block) = weights.blocks.get(l).filter(|_| self.same.is_none()) {
            let run = match &mut self.block {
                Some(run) => run,
                none => {
                    // Copied per kept or new matrix grown: room for the next keystrokes' rows.
                    let old = self.base.prefix().and_then(|(t, p)| Some((t.layers.get(l)?, p)));
                    let flops = (self.block_flops, HEADROOM_ROWS);
                    let keep = self.keep_weights && old.is_none_or(|(layer, _)| layer.keeps_weights());
                    let steps = BlockSteps::new(config, block, old, self.x.clone(), self.mask, flops);
                    none.insert(steps.keeping_weights(keep).keeping_stages(self.keep_stages))
                }
            };
            run.step();
            if let Some(run) = self.block.take_if(|run| run.is_done()) {
                let (layer, out) = run.finish();
                self.layers.push(layer);
                self.x = out;
            }
            return;
        }
        let (d, vocab, n) = (config.n_embd, config.vocab_size, self.logit_rows());
        let total = self.logit_values();
        if self.ln_f.is_none() {
            self.ln_f = Some(norm(config, &self.x, &weights.ln_f_g, &weights.ln_f_b));
            // Allocated once (grown piece by piece, its last doubling alone
            // copied ~26 MB, 267 rows of SmolLM2, in one step), with room
            // for the next keystrokes' rows to go in place.
            let room = if self.every_logits { HEADROOM_ROWS * vocab } else { 0 };
            self.logits = Vec::with_capacity(total + room);
        }
        if self.logits.len() < total {
            // The next piece of the allocation: kept rows copied, then zeros.
            let (from, end) = (self.logits.len(), self.logits.len().saturating_add(self.fill).min(total));
            if let Some((t, _)) = self.base.prefix().filter(|_| from < self.logits_from) {
                self.logits.extend_from_slice(&t.logits.data[from..end.min(self.logits_from)]);
            }
            self.logits.resize(end, 0.0);
            if self.fill != usize::MAX {
                return;
            }
        }
        let cols = self.logit_cols..(self.logit_cols + self.head_columns()).min(vocab);
        let ln_f = self.ln_f.as_deref().unwrap_or_default();
        let ln_f = &ln_f[ln_f.len() - n * d..];
        let new = &mut self.logits[self.logits_from..];
        kernels::lm_head_columns(ln_f, weights.head(), (n, d, vocab), cols.clone(), new);
        self.logit_cols = cols.end;
    }

    /// Takes every step left and returns the trace of all the tokens.
    pub fn finish(mut self) -> Trace {
        while !self.is_done() {
            self.step();
        }
        if let Some(mut same) = self.same.take() {
            if same.logits.rows == 0 {
                same.logits = Matrix::from_vec(1, self.config.vocab_size, self.logits);
            }
            return same;
        }
        let (config, n) = (self.config, self.new_rows());
        let d = config.n_embd;
        let ln_f = self.ln_f.take().unwrap_or_default();
        let (vocab, logit_rows) = (config.vocab_size, self.logit_rows());
        match self.base.prefix() {
            Some((prev, p)) => Trace {
                embeddings: prev.embeddings.appended(p, &self.embeddings, HEADROOM_ROWS),
                ln_f: prev.ln_f.appended(p, &ln_f, HEADROOM_ROWS),
                logits: match self.logits_from {
                    _ if !self.every_logits => Matrix::from_vec(1, vocab, self.logits),
                    0 => prev.logits.appended(p, &self.logits, HEADROOM_ROWS),
                    // The kept rows copied: the previous trace's buffer becomes
                    // their spare, as a copy in `appended` keeps it.
                    from => Matrix {
                        rows: p + n,
                        cols: config.vocab_size,
                        data: SharedRows::copied_from(self.logits, &prev.logits.data, from),
                    },
                },
                tokens: self.tokens,
                mask: self.mask,
                layers: self.layers,
            },
            None => Trace {
                embeddings: Matrix::from_vec(n, d, self.embeddings),
                ln_f: Matrix::from_vec(n, d, ln_f),
                logits: Matrix::from_vec(logit_rows, vocab, self.logits),
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
    /// numbers), but the logits: the LM head in pieces of the vocabulary
    /// may round differently from one product of every column (a product's
    /// blocking depends on its width), so they agree within 1e-5.
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
                for head_flops in [1, 2_000, 20_000, u64::MAX] {
                    for (prev, next) in cases {
                        let what = format!(
                            "{:?} {mask:?}, {head_flops} FLOPs of LM head per step, {} tokens",
                            config.architecture,
                            next.len()
                        );
                        let mut run =
                            TraceRun::new(&config, &w, prev, tokens(next), mask).unwrap().head_flops(head_flops);
                        // The logits allocated in pieces too (ragged: 300 values, rows of 57 or 61).
                        if head_flops < 20_000 {
                            run.fill = 300;
                        }
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

    /// Every number of two traces' JSON within `tol` (relative, and absolute near 0); the same shapes.
    fn assert_close(a: &Trace, b: &Trace, tol: f64, what: &str) {
        fn walk(a: &serde_json::Value, b: &serde_json::Value, tol: f64, at: &str) {
            use serde_json::Value::*;
            match (a, b) {
                (Number(x), Number(y)) => {
                    let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                    assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{at}: {x} vs {y}");
                }
                (Array(x), Array(y)) => {
                    assert_eq!(x.len(), y.len(), "{at}: lengths");
                    x.iter().zip(y).enumerate().for_each(|(i, (x, y))| walk(x, y, tol, &format!("{at}[{i}]")));
                }
                (Object(x), Object(y)) => {
                    assert_eq!(x.len(), y.len(), "{at}: fields");
                    x.iter().for_each(|(k, v)| walk(v, &y[k], tol, &format!("{at}.{k}")));
                }
                (x, y) => assert_eq!(x, y, "{at}"),
            }
        }
        let json = |t: &Trace| serde_json::to_value(t).unwrap();
        walk(&json(a), &json(b), tol, what);
    }

    /// A long text's blocks in pieces (of a product's columns, or of
    /// attention's query rows): the run at once within float rounding (a
    /// product's blocking may depend on its width), one step a piece, for
    /// every mask.
    #[test]
    fn a_block_in_pieces_equals_the_block_at_once() {
        let mut llama = ModelConfig::llama((3, 6, 2, 8), 48, 40, 64, 61);
        llama.tie_word_embeddings = true;
        let gpt2 = ModelConfig::tiny(2, 4, 32, 64, 57);
        for config in [llama, gpt2] {
            let w = random_weights(&config, 5);
            let vocab = config.vocab_size as u32;
            let ids: Vec<u32> = (0..23).map(|i| (i * 11 + 5) % vocab).collect();
            let eight = forward_cpu(&config, &w, tokens(&ids[..8]), Mask::Causal).unwrap();
            for mask in [Mask::Causal, Mask::Window(5), Mask::Bidirectional] {
                // One row or 16 columns a step, a few, about half a phase, a phase.
                for block_flops in [1, 30_000, 100_000, u64::MAX] {
                    for prev in [None, Some(&eight)] {
                        let what = format!(
                            "{:?} {mask:?}, {block_flops} FLOPs a block step, after {:?}",
                            config.architecture,
                            prev.map(|p| p.tokens.len())
                        );
                        let run =
                            TraceRun::new(&config, &w, prev, tokens(&ids), mask).unwrap().block_flops(block_flops);
                        let per_block = BlockSteps::count(&config, run.new_rows(), ids.len(), block_flops);
                        assert!(per_block >= 5, "{what}: a phase a step at least");
                        if block_flops == 1 {
                            let width = config.qkv_dim().div_ceil(16) + run.new_rows();
                            assert!(per_block > width, "{what}: 16 columns or a row a step");
                        }
                        assert_eq!(run.progress(), (0, config.n_layer * per_block + 1), "{what}");
                        let mut run = run;
                        let mut steps = 0;
                        while !run.is_done() {
                            run.step();
                            steps += 1;
                            assert_eq!(run.progress().0, steps, "{what}");
                        }
                        let want = match prev {
                            Some(prev) if mask == Mask::Causal => {
                                extend_cpu(&config, &w, prev, tokens(&ids), mask).unwrap()
                            }
                            _ => forward_cpu(&config, &w, tokens(&ids), mask).unwrap(),
                        };
                        assert_close(&run.finish(), &want, 1e-5, &what);
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
