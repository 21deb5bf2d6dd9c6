//! One block of a run on its new rows, a piece at a time: [`BlockSteps`].
//! The page takes a long text's run in steps short enough to keep typing
//! fluent (`stepwise::TraceRun`). A block used to go a piece of rows per
//! step, each piece appended to the rows before it, and every piece read
//! all the block's weights again: in the browser a SmolLM2 run of 126
//! tokens in pieces of 28 rows took 1.5× the run at once (1,967 against
//! 1,355 ms), the weights (539 MB) read five times instead of once. Here
//! every product runs on all the new rows at once, a piece of its columns
//! (of the weights) per step, so each weight is read once; attention, whose
//! cost grows with the keys, goes a piece of query rows per step (every
//! key and value is known by then). Taken at once (one piece per phase),
//! the products are the whole ones: `forward_cpu` computes the same numbers
//! as before. An intervention re-runs a layer as its attention half and its
//! tail with the heads' outputs replaced in between
//! ([`attention_half`](BlockSteps::attention_half), [`tail`](BlockSteps::tail)).

use std::ops::ControlFlow;

use super::extend::{attention_trace, keys_and_values, AttentionParts};
use super::forward::{head_piece_columns, norm, BlockTail};
use super::kernels::{self, AttentionRows, QkvRows};
use super::{ops, AttentionTrace, LayerTrace, Mask, Matrix};
use crate::model::{BlockWeights, ModelConfig};

/// What a step of a block computes: a piece of a product's columns, or of
/// attention's query rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The fused Q, K, V projection (then RoPE).
    Qkv,
    /// Scores, mask, softmax and A·V of every head.
    Attention,
    /// The heads' output projection (then the residual and the second norm).
    Proj,
    /// The MLP's first product (SwiGLU: gate and up side by side), then its activation.
    Up,
    /// The MLP's second product (then the residual).
    Down,
}

/// The phases in order: `PHASES[phase as usize] == phase`.
const PHASES: [Phase; 5] = [Phase::Qkv, Phase::Attention, Phase::Proj, Phase::Up, Phase::Down];
const _: () = {
    let mut i = 0;
    while i < PHASES.len() {
        assert!(PHASES[i] as usize == i, "PHASES follows the order of Phase");
        i += 1;
    }
};

/// A block on `n` new rows after `p` kept ones, in steps of about a FLOP
/// budget each; [`finish`](Self::finish) assembles its trace of all
/// `p + n` rows.
pub(super) struct BlockSteps<'a> {
    config: &'a ModelConfig,
    block: &'a BlockWeights,
    /// The kept rows' trace of this block, and how many rows it keeps.
    old: Option<(&'a LayerTrace, usize)>,
    mask: Mask,
    /// Rows of room a matrix copied to grow leaves for later ones.
    room: usize,
    /// Whether the trace keeps each head's weights of the new rows (else
    /// their rows' softmax max and sum alone: `HeadTrace::kept_weights`).
    keep_weights: bool,
    /// Whether the trace keeps the layer's norms, stream and MLP hidden
    /// layer (else computed when read: `Trace::stream_rows`).
    keep_stages: bool,
    /// The new rows' residual stream entering the block, `[n × d]`.
    x: Vec<f32>,
    /// Columns (or, for attention, rows) per step of each phase.
    piece: [usize; 5],
    /// The phase under way (an index into [`PHASES`]) and how far into it
    /// (columns or rows done); done at phase `last` (the attention half
    /// alone ends before [`Phase::Proj`]).
    phase: usize,
    last: usize,
    done: usize,
    taken: usize,
    parts: AttentionParts,
    keys: Vec<f32>,
    values: Vec<f32>,
    attn_out: Vec<f32>,
    resid_mid: Vec<f32>,
    ln_2: Vec<f32>,
    /// The MLP's first product (`[n × 2m]` gate and up for SwiGLU), and its activation `[n × m]`.
    up: Vec<f32>,
    mlp_hidden: Vec<f32>,
    mlp_out: Vec<f32>,
    resid_post: Vec<f32>,
}

impl<'a> BlockSteps<'a> {
    /// The block on the new rows `x` (`[n × d]`) after `old`'s first `p`
    /// rows (`None`: every row is new), each step about `flops` (at least
    /// a piece of 16 columns or one row; `u64::MAX`: a phase a step).
    pub fn new(
        config: &'a ModelConfig,
        block: &'a BlockWeights,
        old: Option<(&'a LayerTrace, usize)>,
        x: Vec<f32>,
        mask: Mask,
        (flops, room): (u64, usize),
    ) -> Self {
        let old = old.map(|(layer, p)| (layer, p.min(layer.attn_out.rows)));
        let n = x.len() / config.n_embd.max(1);
        let piece = Self::pieces(config, n, old.map_or(0, |(_, p)| p) + n, flops);
        BlockSteps {
            config,
            block,
            old,
            mask,
            room,
            keep_weights: true,
            keep_stages: true,
            x,
            piece,
            phase: 0,
            last: PHASES.len(),
            done: 0,
            taken: 0,
            parts: AttentionParts::default(),
            keys: Vec::new(),
            values: Vec::new(),
            attn_out: Vec::new(),
            resid_mid: Vec::new(),
            ln_2: Vec::new(),
            up: Vec::new(),
            mlp_hidden: Vec::new(),
            mlp_out: Vec::new(),
            resid_post: Vec::new(),
        }
    }

    /// Whether the trace keeps each head's weights of the new rows (by
    /// default it does); without, their rows' softmax max and sum alone.
    pub fn keeping_weights(mut self, keep: bool) -> Self {
        self.keep_weights = keep;
        self
    }

    /// Whether the trace keeps the layer's norms, residual stream and MLP
    /// hidden layer (by default it does, and only where the old rows' layer
    /// kept them); without, they are computed when read from the stream
    /// entering the block and its attention and MLP outputs.
    pub fn keeping_stages(mut self, keep: bool) -> Self {
        self.keep_stages = keep;
        self
    }

    /// Columns (or, for attention, query rows) per step of each phase, for
    /// `n` new rows of `t`, each step about `flops`.
    fn pieces(config: &ModelConfig, n: usize, t: usize, flops: u64) -> [usize; 5] {
        let (d, m, width, q_dim) = (config.n_embd, config.n_inner, config.qkv_dim(), config.q_dim());
        let columns = |k: usize, cols: usize| head_piece_columns(n, k, cols, flops);
        // A query row against every key: Q·Kᵀ and A·V, 2 FLOPs a term each, every head.
        let row_flops = (4 * t * config.d_head() * config.n_head).max(1) as u64;
        let rows = usize::try_from(flops / row_flops).unwrap_or(usize::MAX).clamp(1, n.max(1));
        [columns(d, width), rows, columns(q_dim, d), columns(d, Self::up_width(config)), columns(m, d)]
    }

    /// Steps a block takes on `n` new rows of `t`, each step about `flops`.
    pub fn count(config: &ModelConfig, n: usize, t: usize, flops: u64) -> usize {
        let pieces = Self::pieces(config, n, t, flops);
        PHASES
            .iter()
            .zip(pieces)
            .map(|(&phase, piece)| Self::extent_of(config, n, phase).div_ceil(piece.max(1)).max(1))
            .sum()
    }

    /// The MLP's first product's width: gate and up side by side (SwiGLU), or one.
    fn up_width(config: &ModelConfig) -> usize {
        if config.architecture.is_llama_family() {
            2 * config.n_inner
        } else {
            config.n_inner
        }
    }

    fn rows(&self) -> usize {
        self.x.len() / self.config.n_embd.max(1)
    }

    /// Columns (or rows) a phase covers, for `n` new rows.
    fn extent_of(c: &ModelConfig, n: usize, phase: Phase) -> usize {
        match phase {
            Phase::Qkv => c.qkv_dim(),
            Phase::Attention => n,
            Phase::Proj | Phase::Down => c.n_embd,
            Phase::Up => Self::up_width(c),
        }
    }

    fn extent(&self, phase: Phase) -> usize {
        Self::extent_of(self.config, self.rows(), phase)
    }

    /// Steps taken.
    pub fn taken(&self) -> usize {
        self.taken
    }

    pub fn is_done(&self) -> bool {
        self.phase >= self.last
    }

    /// The attention half alone, on every row `x` (nothing kept): to end
    /// in [`into_attention`](Self::into_attention).
    pub fn attention_half(
        config: &'a ModelConfig,
        block: &'a BlockWeights,
        x: Vec<f32>,
        mask: Mask,
        flops: u64,
    ) -> Self {
        BlockSteps {
            last: PHASES.iter().position(|&p| p == Phase::Proj).unwrap_or(0),
            ..Self::new(config, block, None, x, mask, (flops, 0))
        }
    }

    /// The rest of a block after its heads (projection, residual, norm,
    /// MLP) on every row `x`, the heads' outputs side by side in `concat`
    /// (`[n × q_dim]`): to end in [`into_tail`](Self::into_tail).
    pub fn tail(config: &'a ModelConfig, block: &'a BlockWeights, x: Vec<f32>, concat: Vec<f32>, flops: u64) -> Self {
        // (The tail reads no mask.)
        let mut steps = Self::new(config, block, None, x, Mask::Causal, (flops, 0));
        steps.phase = Phase::Proj as usize;
        steps.parts.out = concat;
        steps
    }

    /// [`attention_half`](Self::attention_half)'s trace and the heads'
    /// outputs side by side, once every step is taken.
    pub fn into_attention(mut self) -> (AttentionTrace, Vec<f32>) {
        while !self.is_done() {
            self.step();
        }
        attention_trace(self.config, None, self.parts, (self.mask, self.keep_stages), 0)
    }

    /// [`tail`](Self::tail)'s result, once every step is taken.
    pub fn into_tail(mut self) -> BlockTail {
        while !self.is_done() {
            self.step();
        }
        BlockTail {
            attn_out: self.attn_out,
            resid_mid: self.resid_mid,
            ln_2: self.ln_2,
            mlp_hidden: self.mlp_hidden,
            mlp_out: self.mlp_out,
            resid_post: self.resid_post,
        }
    }

    /// Takes every step, awaiting `pause` after each; `None` as soon as a
    /// pause says to stop.
    pub async fn paced(mut self, pause: &mut impl AsyncFnMut() -> ControlFlow<()>) -> Option<Self> {
        while !self.is_done() {
            self.step();
            if pause().await.is_break() {
                return None;
            }
        }
        Some(self)
    }

    /// Takes the next step; nothing once done.
    pub fn step(&mut self) {
        let Some(&phase) = PHASES.get(self.phase).filter(|_| !self.is_done()) else { return };
        let (extent, piece) = (self.extent(phase), self.piece[self.phase].max(1));
        let range = self.done..(self.done + piece).min(extent);
        if self.done == 0 {
            self.begin(phase);
        }
        self.compute(phase, range.clone());
        self.done = range.end;
        self.taken += 1;
        if self.done >= extent {
            self.end(phase);
            self.phase += 1;
            self.done = 0;
        }
    }

    /// What a phase needs before its first piece.
    fn begin(&mut self, phase: Phase) {
        let (c, n) = (self.config, self.rows());
        let (d, block) = (c.n_embd, self.block);
        match phase {
            Phase::Qkv => {
                self.parts.ln_1 = norm(c, &self.x, &block.ln_1_g, &block.ln_1_b);
                self.parts.qkv = vec![0.0; n * c.qkv_dim()];
            }
            Phase::Attention => {
                let len = c.n_head * n * self.keys();
                self.parts.weights = if self.keep_weights { vec![0.0; len] } else { Vec::new() };
                self.parts.softmax = vec![0.0; 2 * c.n_head * n];
                self.parts.out = vec![0.0; n * c.q_dim()];
            }
            Phase::Proj => self.attn_out = self.zeros_with_room(n, d),
            Phase::Up => self.up = self.zeros_with_room(n, Self::up_width(c)),
            Phase::Down => self.mlp_out = self.zeros_with_room(n, d),
        }
    }

    /// `rows × cols` zeros in a buffer with the trace's room for later rows
    /// already in it (the trace keeps the buffer without copying it to grow it).
    fn zeros_with_room(&self, rows: usize, cols: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity((rows + self.room) * cols);
        v.resize(rows * cols, 0.0);
        v
    }

    /// Keys every new row is scored against: the kept rows and the new.
    fn keys(&self) -> usize {
        self.kept() + self.rows()
    }

    fn kept(&self) -> usize {
        self.old.map_or(0, |(_, p)| p)
    }

    /// One piece of a phase: columns `range` of its product, or query rows `range`.
    fn compute(&mut self, phase: Phase, range: std::ops::Range<usize>) {
        let (c, b, n) = (self.config, self.block, self.rows());
        let (d, m, q_dim, width) = (c.n_embd, c.n_inner, c.q_dim(), c.qkv_dim());
        match phase {
            Phase::Qkv => {
                let shape = (n, d, width);
                kernels::matmul_bias_columns(
                    &self.parts.ln_1,
                    &b.attn_qkv_w,
                    &b.attn_qkv_b.data,
                    shape,
                    range,
                    &mut self.parts.qkv,
                );
            }
            Phase::Attention => {
                let (p, t, heads) = (self.kept(), self.keys(), c.n_head);
                let (row0, len) = (p + range.start, range.len());
                let shape = AttentionRows { row0, m: len, t, n_head: heads, d_head: c.d_head(), mask: self.mask };
                let qkv = QkvRows {
                    q: &self.parts.qkv,
                    q_row0: p,
                    q_stride: width,
                    k: &self.keys,
                    v: &self.values,
                    kv_stride: c.kv_dim(),
                    group: c.kv_group().max(1),
                };
                // The kernel writes this piece's rows into scratch of their
                // own (its raw and masked scores are dropped: the trace
                // computes them from Q and K when read); they are then
                // copied to the block's rows, the weights if kept.
                let o = kernels::attention_rows_owned(&shape, &qkv);
                self.parts.out[range.start * q_dim..][..len * q_dim].copy_from_slice(&o.out);
                for h in 0..heads {
                    let (from, to) = (h * len, h * n + range.start);
                    self.parts.softmax[2 * to..][..2 * len].copy_from_slice(&o.softmax[2 * from..][..2 * len]);
                    if self.keep_weights {
                        self.parts.weights[to * t..][..len * t].copy_from_slice(&o.weights[from * t..][..len * t]);
                    }
                }
            }
            Phase::Proj => {
                let (w, bias) = (&b.attn_proj_w, &b.attn_proj_b.data);
                kernels::matmul_bias_columns(&self.parts.out, w, bias, (n, q_dim, d), range, &mut self.attn_out);
            }
            Phase::Up => {
                let (w, bias, up) = (&b.mlp_fc_w, &b.mlp_fc_b.data, Self::up_width(c));
                kernels::matmul_bias_columns(&self.ln_2, w, bias, (n, d, up), range, &mut self.up);
            }
            Phase::Down => {
                let (w, bias) = (&b.mlp_proj_w, &b.mlp_proj_b.data);
                kernels::matmul_bias_columns(&self.mlp_hidden, w, bias, (n, m, d), range, &mut self.mlp_out);
            }
        }
    }

    /// What follows a phase's last piece.
    fn end(&mut self, phase: Phase) {
        let (c, n) = (self.config, self.rows());
        match phase {
            Phase::Qkv => {
                // RoPE on the Q and K columns (as `forward::project_qkv`), the
                // columns before it kept; then every key and value.
                let (width, qk) = (c.qkv_dim(), c.q_dim() + c.kv_dim());
                if let Some(inv_freq) = c.rope_theta.map(|_| c.rope_inv_freq()) {
                    let qkv = &self.parts.qkv;
                    self.parts.pre = Some(qkv.chunks_exact(width).flat_map(|row| row[..qk].iter().copied()).collect());
                    let (heads, row0) = (c.n_head + c.n_kv_head, self.kept());
                    ops::rope(&mut self.parts.qkv, n, width, heads, c.d_head(), row0, &inv_freq);
                }
                let old = self.old.map(|(layer, p)| (&layer.attention, p));
                (self.keys, self.values) = keys_and_values(c, old, &self.parts.qkv);
            }
            Phase::Attention => {}
            Phase::Proj => {
                self.resid_mid = kernels::add(&self.x, &self.attn_out);
                self.ln_2 = norm(c, &self.resid_mid, &self.block.ln_2_g, &self.block.ln_2_b);
            }
            Phase::Up => {
                self.mlp_hidden = if c.architecture.is_llama_family() {
                    kernels::swiglu(&self.up, c.n_inner)
                } else {
                    kernels::activate(&mut self.up, c.activation_function);
                    std::mem::take(&mut self.up)
                };
                self.up = Vec::new();
            }
            Phase::Down => self.resid_post = kernels::add(&self.resid_mid, &self.mlp_out),
        }
    }

    /// Takes every step left and returns the block's trace of all its
    /// rows and the new rows' residual stream leaving it.
    pub fn finish(mut self) -> (LayerTrace, Vec<f32>) {
        while !self.is_done() {
            self.step();
        }
        let (c, p, room) = (self.config, self.kept(), self.room);
        let old = self.old.map(|(layer, _)| layer);
        let keep = self.keep_stages && old.is_none_or(LayerTrace::keeps_stages);
        let (attention, _) = attention_trace(c, old.map(|l| (&l.attention, p)), self.parts, (self.mask, keep), room);
        let (d, m) = (c.n_embd, c.n_inner);
        let after = |old: Option<&Matrix>, new: Vec<f32>, cols: usize| Matrix::after(old, p, new, cols, room);
        // Kept only where the old rows' are (checked above).
        let kept = |old: Option<&Option<Matrix>>, new: Vec<f32>, cols: usize| {
            keep.then(|| after(old.and_then(Option::as_ref), new, cols))
        };
        let layer = LayerTrace {
            attention,
            attn_out: after(old.map(|l| &l.attn_out), self.attn_out, d),
            resid_mid: kept(old.map(|l| &l.resid_mid), self.resid_mid, d),
            ln_2: kept(old.map(|l| &l.ln_2), self.ln_2, d),
            mlp_hidden: kept(old.map(|l| &l.mlp_hidden), self.mlp_hidden, m),
            mlp_out: after(old.map(|l| &l.mlp_out), self.mlp_out, d),
            resid_post: kept(old.map(|l| &l.resid_post), self.resid_post.clone(), d),
        };
        (layer, self.resid_post)
    }
}
