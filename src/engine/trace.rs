//! `Trace`: every intermediate of a forward pass, with shapes: the UI reads
//! each stage from it (the raw, scaled and masked scores it computes from the
//! kept Q, K and mask, bit for bit the kernel's) and never runs the model.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

use super::forward::{mlp_hidden, norm};
use super::kernels::{self, SoftmaxRow};
use super::shared_rows::SharedRows;
use super::square::{MatrixView, SquareMatrix};
use super::Mask;
use crate::model::{ModelConfig, Tensor, Token, Weights};

/// A dense row-major f32 matrix. Its values may share a buffer with another
/// trace's matrix of the same stage ([`SharedRows`]): a keystroke's trace
/// holds the previous trace's rows and appends its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: SharedRows,
}

/// Columns `offset..offset + width` of the first `rows` rows of a row-major
/// buffer whose rows are `stride` wide, in a vector with room for `room`
/// more rows of them.
pub(super) fn column_values(
    all: &[f32],
    rows: usize,
    stride: usize,
    offset: usize,
    width: usize,
    room: usize,
) -> Vec<f32> {
    let mut values = Vec::with_capacity((rows + room) * width);
    for i in 0..rows {
        values.extend_from_slice(&all[i * stride + offset..][..width]);
    }
    values
}

/// Rows of room a matrix copied for new rows leaves for the next ones (the
/// next keystrokes' rows then go in place).
pub(super) const HEADROOM_ROWS: usize = 16;

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols].into() }
    }

    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix data does not match its shape");
        Self { rows, cols, data: data.into() }
    }

    /// Columns `offset..offset + width` of the first `rows` rows of a row-major
    /// buffer whose rows are `stride` wide (one head's slice of Q, K, V or outputs).
    pub fn from_columns(all: &[f32], rows: usize, stride: usize, offset: usize, width: usize) -> Self {
        Self { rows, cols: width, data: column_values(all, rows, stride, offset, width, 0).into() }
    }

    /// The first `p` rows (at most all), then `new` (whole rows): sharing
    /// this matrix's buffer when nothing was written past those rows yet
    /// ([`SharedRows::extended`]), else in a copy with room for `room` more
    /// rows (the rest of a run's rows, and [`HEADROOM_ROWS`] for the next
    /// keystrokes').
    pub fn appended(&self, p: usize, new: &[f32], room: usize) -> Matrix {
        let p = p.min(self.rows);
        let cols = self.cols.max(1);
        let data = self.data.extended(p * self.cols, new, room * self.cols);
        Matrix { rows: p + new.len() / cols, cols: self.cols, data }
    }

    /// `old`'s first `p` rows then `new` (whole rows, `cols` wide), as
    /// [`appended`](Self::appended); with no `old`, `new` alone, in its own
    /// buffer with room for `room` more rows (taken as it is when it has it).
    pub fn after(old: Option<&Matrix>, p: usize, mut new: Vec<f32>, cols: usize, room: usize) -> Matrix {
        match old {
            Some(m) => m.appended(p, &new, room),
            None => {
                new.reserve_exact(room * cols);
                Matrix { rows: new.len() / cols.max(1), cols, data: new.into() }
            }
        }
    }

    /// The first `p` rows (at most all), sharing the buffer.
    pub fn first_rows(&self, p: usize) -> Matrix {
        let p = p.min(self.rows);
        Matrix { rows: p, cols: self.cols, data: self.data.prefix(p * self.cols) }
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.cols + c]
    }

    pub fn view(&self) -> MatrixView<'_> {
        self.into()
    }

    /// Rows as nested lists; non-finite entries (masked scores) become `null`.
    pub fn to_rows(&self) -> Vec<Vec<Option<f32>>> {
        self.view().to_rows()
    }
}

impl Serialize for Matrix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_rows().serialize(s)
    }
}

/// One attention head of one layer.
///
/// Of its four T×T stages the CPU's trace keeps at most one, the weights,
/// and only while every head's fit the run's budget: the raw scores are
/// Q·Kᵀ of the `q` and `k` it keeps, computed when they are read
/// ([`HeadTrace::raw`], [`HeadTrace::scores_raw`]) as the attention kernel
/// computes them; the scaled and masked scores follow from the raw ones,
/// the scale and the mask ([`HeadTrace::scores_scaled`],
/// [`HeadTrace::scores_masked`]); and without kept weights, a weight
/// follows from its raw score and its row's softmax max and sum
/// ([`HeadTrace::weight`]), bit for bit the kernel's. A long text's trace
/// so holds one T×T matrix per head, or none (SmolLM2 at T = 512: 0.28 GB
/// of weights, 1.1 GB for all four stages; without, each row's max and sum:
/// 2.2 kB a token).
#[derive(Debug, Clone)]
pub struct HeadTrace {
    /// Queries, keys and values of this head, T×d_head each (after RoPE
    /// when the model has it). The keys and values are its KV head's, the
    /// very matrices of the other query heads of its group (`kv_head`).
    pub q: Matrix,
    pub k: Arc<Matrix>,
    pub v: Arc<Matrix>,
    /// Q·Kᵀ, T×T over every key, as a GPU run computed it and its trace
    /// read it back (that kernel's own numbers, which the tests hold against
    /// the CPU's). `None` in the CPU's traces, which compute each raw score
    /// from `q` and `k` when it is read ([`HeadTrace::raw`]).
    pub scores_read: Option<SquareMatrix>,
    /// The mask the run used: which scaled scores became −∞.
    pub mask: Mask,
    /// Row softmax of the masked scores, T×T: a GPU run's read back, a CPU
    /// run's when every head's fit its budget; `None` where they are
    /// computed when read ([`HeadTrace::weight`], [`HeadTrace::weights`]).
    pub kept_weights: Option<SquareMatrix>,
    /// A CPU run's: each row's softmax max and sum (T×2, [`SoftmaxRow`]),
    /// from which one weight costs one raw score.
    pub softmax: Option<Matrix>,
    /// Weights · V, T×d_head.
    pub output: Matrix,
    /// RoPE models: this head's Q and K before the rotation (`q` and `k` are
    /// after it: what is dotted). Absent for learned positions (GPT-2).
    pub q_pre_rope: Option<Matrix>,
    pub k_pre_rope: Option<Arc<Matrix>>,
    /// The Llama family: which KV head this query head reads (its `k`, `v`
    /// and `k_pre_rope` are that head's).
    pub kv_head: Option<usize>,
}

impl HeadTrace {
    /// 1/√d_head, as the attention kernels scale the scores.
    pub fn scale(&self) -> f32 {
        1.0 / (self.q.cols as f32).sqrt()
    }

    /// Tokens (rows and columns of the T×T stages).
    pub fn tokens(&self) -> usize {
        self.q.rows
    }

    /// Raw score (i, j), q_i · k_j: the one read back from a GPU run, or on
    /// the CPU computed now, bit for bit as its attention kernel computed it
    /// (`kernels::raw_score`). Panics outside the T×T matrix, like indexing.
    pub fn raw(&self, i: usize, j: usize) -> f32 {
        match &self.scores_read {
            Some(m) => m.at(i, j),
            None => kernels::raw_score(self.q.row(i), self.k.row(j)),
        }
    }

    /// Weight (i, j), the row softmax of the masked scores: kept, or
    /// computed now bit for bit as the kernel computed it (from the raw
    /// score and its row's softmax max and sum, or the whole row). Panics
    /// outside the T×T matrix, like indexing.
    pub fn weight(&self, i: usize, j: usize) -> f32 {
        let t = self.tokens();
        assert!(i < t && j < t, "weight ({i}, {j}) of a {t}×{t} matrix");
        match (&self.kept_weights, self.row_softmax(i)) {
            (Some(w), _) => w.at(i, j),
            (None, _) if !self.mask.allows(i, j) => 0.0,
            (None, Some(row)) => row.weight(self.raw(i, j), self.scale()),
            (None, None) => self.weight_row(i)[j],
        }
    }

    /// Row `i` of the weights (T values): kept, or computed now as the
    /// kernel computed it.
    pub fn weight_row(&self, i: usize) -> Cow<'_, [f32]> {
        match &self.kept_weights {
            Some(w) => Cow::Borrowed(w.row(i)),
            None => Cow::Owned(self.weight_rows(i..i + 1)),
        }
    }

    /// The T×T weights: kept, or computed now (T²·d_head multiply-adds).
    pub fn weights(&self) -> Cow<'_, SquareMatrix> {
        match &self.kept_weights {
            Some(w) => Cow::Borrowed(w),
            None => {
                let t = self.tokens().min(self.k.rows);
                Cow::Owned(SquareMatrix::from_vec(t, self.weight_rows(0..t)))
            }
        }
    }

    /// The weights at rows `rows` × columns `cols`, a `rows.len() ×
    /// cols.len()` matrix: kept, or computed now bit for bit as the kernel
    /// computed them (a raw score per cell and its row's softmax max and
    /// sum; whole rows without those). What a map shrunk below a pixel a
    /// cell reads (the model grid's tiles). Panics past the T×T matrix.
    pub fn weights_at(&self, rows: &[usize], cols: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(rows.len() * cols.len());
        match (&self.kept_weights, &self.softmax) {
            (Some(w), _) => {
                for &i in rows {
                    data.extend(cols.iter().map(|&j| w.at(i, j)));
                }
            }
            (None, Some(_)) => {
                let gather = |m: &Matrix, at: &[usize]| at.iter().flat_map(|&r| m.row(r).to_vec()).collect::<Vec<_>>();
                let (q, k) = (gather(&self.q, rows), gather(&self.k, cols));
                let raw = kernels::head_raw_scores(&q, &k, (rows.len(), cols.len(), self.q.cols));
                for (&i, raw) in rows.iter().zip(raw.chunks_exact(cols.len().max(1))) {
                    let row = self.row_softmax(i);
                    data.extend(cols.iter().zip(raw).map(|(&j, &r)| match row {
                        Some(row) if self.mask.allows(i, j) => row.weight(r, self.scale()),
                        _ => 0.0,
                    }));
                }
            }
            (None, None) => {
                for &i in rows {
                    let row = self.weight_row(i);
                    data.extend(cols.iter().map(|&j| row[j]));
                }
            }
        }
        Matrix::from_vec(rows.len(), cols.len(), data)
    }

    /// Row `i`'s softmax max and sum, where the trace keeps them.
    fn row_softmax(&self, i: usize) -> Option<SoftmaxRow> {
        self.softmax.as_ref().map(|s| SoftmaxRow { max: s.at(i, 0), sum: s.at(i, 1) })
    }

    /// Rows `rows` of the weights (`rows.len() × T`): kept, or computed
    /// from Q, K and the mask as the kernel computed them. Panics past the
    /// T×T matrix.
    pub fn weight_rows(&self, rows: Range<usize>) -> Vec<f32> {
        match &self.kept_weights {
            Some(w) => rows.flat_map(|i| w.row(i).to_vec()).collect(),
            None => {
                let (t, d_head) = (self.tokens(), self.q.cols);
                kernels::head_weight_rows(&self.q.data, &self.k.data, d_head, t.min(self.k.rows), rows, self.mask)
            }
        }
    }

    /// Rows `rows` of Q·Kᵀ over every key (`rows.len() × T`): read back, or
    /// computed by the attention kernel's product (bit for bit
    /// [`scores_raw`](Self::scores_raw)'s rows). Panics past the matrix.
    pub fn scores_raw_rows(&self, rows: Range<usize>) -> Vec<f32> {
        match &self.scores_read {
            Some(m) => rows.flat_map(|i| m.row(i).to_vec()).collect(),
            None => {
                let (t, d_head) = (self.q.rows.min(self.k.rows), self.q.cols);
                let q = &self.q.data[rows.start * d_head..rows.end * d_head];
                kernels::head_raw_scores(q, &self.k.data[..t * d_head], (rows.len(), t, d_head))
            }
        }
    }

    /// Q·Kᵀ, T×T, over every key (the mask applies after the scaling):
    /// computed by the attention kernel's own product where the trace keeps
    /// no raw scores (`scores_read`).
    pub fn scores_raw(&self) -> Matrix {
        match &self.scores_read {
            Some(m) => m.to_matrix(),
            None => {
                let (t, d_head) = (self.q.rows.min(self.k.rows), self.q.cols);
                let (q, k) = (&self.q.data[..t * d_head], &self.k.data[..t * d_head]);
                Matrix::from_vec(t, t, kernels::head_raw_scores(q, k, (t, t, d_head)))
            }
        }
    }

    /// Score (i, j) scaled, and −∞ where the mask forbids key j to query i
    /// (`masked`): bit for bit what the kernels compute.
    pub fn score(&self, i: usize, j: usize, masked: bool) -> f32 {
        if masked && !self.mask.allows(i, j) {
            f32::NEG_INFINITY
        } else {
            self.raw(i, j) * self.scale()
        }
    }

    /// Q·Kᵀ / √d_head, T×T.
    pub fn scores_scaled(&self) -> Matrix {
        self.scores(false)
    }

    /// The scaled scores with −∞ where the mask forbids (serialised as null).
    pub fn scores_masked(&self) -> Matrix {
        self.scores(true)
    }

    fn scores(&self, masked: bool) -> Matrix {
        let raw = self.scores_raw();
        let (rows, cols, scale) = (raw.rows, raw.cols, self.scale());
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            data.extend(raw.row(i).iter().enumerate().map(|(j, &r)| {
                if masked && !self.mask.allows(i, j) {
                    f32::NEG_INFINITY
                } else {
                    r * scale
                }
            }));
        }
        Matrix::from_vec(rows, cols, data)
    }
}

/// A head as `attnscope trace` writes it: every stage, the scaled and
/// masked scores included.
impl Serialize for HeadTrace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("HeadTrace", 11)?;
        out.serialize_field("q", &self.q)?;
        out.serialize_field("k", &*self.k)?;
        out.serialize_field("v", &*self.v)?;
        out.serialize_field("scores_raw", &self.scores_raw())?;
        out.serialize_field("scores_scaled", &self.scores_scaled())?;
        out.serialize_field("scores_masked", &self.scores_masked())?;
        out.serialize_field("weights", &*self.weights())?;
        out.serialize_field("output", &self.output)?;
        if let Some(m) = &self.q_pre_rope {
            out.serialize_field("q_pre_rope", m)?;
        }
        if let Some(m) = &self.k_pre_rope {
            out.serialize_field("k_pre_rope", &**m)?;
        }
        if let Some(kv) = self.kv_head {
            out.serialize_field("kv_head", &kv)?;
        }
        out.end()
    }
}

/// The attention half of a layer, up to the concatenated head outputs.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionTrace {
    /// The first norm (LayerNorm or RMSNorm) of the residual stream
    /// entering the layer, T×d; `None` where the trace computes it when
    /// read ([`Trace::ln_1`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ln_1: Option<Matrix>,
    pub heads: Vec<HeadTrace>,
}

impl AttentionTrace {
    /// Rows (tokens) of the layer.
    pub fn rows(&self) -> usize {
        self.heads.first().map_or(0, |h| h.q.rows)
    }
}

/// One transformer block. The stream's stages and the MLP's hidden layer
/// are kept (a whole forward, the CLI, a GPU trace) or computed when read
/// from the kept ones (the page's CPU runs: [`TraceKeeps::block_stages`];
/// read through [`Trace::stream_rows`], [`Trace::ln_1`], [`Trace::ln_2`]
/// and [`Trace::mlp_hidden`]).
#[derive(Debug, Clone, Serialize)]
pub struct LayerTrace {
    #[serde(flatten)]
    pub attention: AttentionTrace,
    /// concat(head outputs) · W_o + b_o, T×d.
    pub attn_out: Matrix,
    /// Residual stream after attention: resid_pre + attn_out, T×d.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resid_mid: Option<Matrix>,
    /// ln_2(resid_mid), T×d.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ln_2: Option<Matrix>,
    /// MLP hidden layer after the activation, T×n_inner (4d in GPT-2;
    /// silu(gate)·up in the Llama family).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlp_hidden: Option<Matrix>,
    /// MLP output, T×d.
    pub mlp_out: Matrix,
    /// Residual stream after the block: resid_mid + mlp_out, T×d.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resid_post: Option<Matrix>,
}

impl LayerTrace {
    pub fn heads(&self) -> &[HeadTrace] {
        &self.attention.heads
    }

    /// Whether the layer keeps its norms, residual stream and MLP hidden
    /// layer (else they are computed when read).
    pub fn keeps_stages(&self) -> bool {
        self.resid_post.is_some()
    }

    /// Whether every head keeps its T×T weights (`HeadTrace::kept_weights`).
    pub fn keeps_weights(&self) -> bool {
        self.heads().iter().all(|h| h.kept_weights.is_some())
    }
}

/// Every intermediate of one forward pass.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub tokens: Vec<Token>,
    pub mask: Mask,
    /// Token plus position embeddings (token embeddings alone with RoPE):
    /// the residual stream entering layer 0, T×d.
    pub embeddings: Matrix,
    pub layers: Vec<LayerTrace>,
    /// Final norm (LayerNorm or RMSNorm), T×d.
    pub ln_f: Matrix,
    /// Next-token logits: every position's, T×vocab (a whole forward, the
    /// CLI), or the last position's alone, 1×vocab (the page's runs, whose
    /// readers take the last row only: 196 kB a token on SmolLM2, 18 % of
    /// its trace; and a GPU trace read without every row). Read through
    /// [`Trace::logits_at`] and [`Trace::last_logits`].
    pub logits: Matrix,
}

impl Trace {
    /// Whether [`logits`](Self::logits) holds every position's row (else
    /// the last position's alone).
    pub fn keeps_every_logits_row(&self) -> bool {
        self.logits.rows == self.tokens.len()
    }

    /// The next-token logits after position `p`, when the trace holds them
    /// (every row, or `p` the last position).
    pub fn logits_at(&self, p: usize) -> Option<&[f32]> {
        let t = self.tokens.len();
        match self.logits.rows {
            _ if p >= t => None,
            rows if rows == t => Some(self.logits.row(p)),
            1 if p + 1 == t => Some(self.logits.row(0)),
            _ => None,
        }
    }

    /// The last position's next-token logits (empty for a trace of nothing).
    pub fn last_logits(&self) -> &[f32] {
        self.tokens.len().checked_sub(1).and_then(|p| self.logits_at(p)).unwrap_or_default()
    }

    /// The residual stream's point `r` where the trace keeps it: 0 the
    /// embeddings, then per layer after attention (resid_mid) and after
    /// the MLP (resid_post).
    fn kept_stream(&self, r: usize) -> Option<&Matrix> {
        match r {
            0 => Some(&self.embeddings),
            r => self.layers.get((r - 1) / 2).and_then(|l| {
                if r % 2 == 1 {
                    l.resid_mid.as_ref()
                } else {
                    l.resid_post.as_ref()
                }
            }),
        }
    }

    /// Hands `f` rows `rows` of the residual stream at each point `0..=last`
    /// in turn (see [`stream_rows`](Self::stream_rows)); false when `rows`
    /// or `last` are outside the trace.
    pub fn walk_stream(&self, rows: Range<usize>, last: usize, mut f: impl FnMut(usize, &[f32])) -> bool {
        let d = self.embeddings.cols;
        if rows.start > rows.end || rows.end > self.embeddings.rows || last > 2 * self.layers.len() {
            return false;
        }
        let span = rows.start * d..rows.end * d;
        let mut x: Cow<'_, [f32]> = Cow::Borrowed(&self.embeddings.data[span.clone()]);
        f(0, &x);
        for r in 1..=last {
            x = match self.kept_stream(r) {
                Some(m) => Cow::Borrowed(&m.data[span.clone()]),
                None => {
                    // The forward's own add (`kernels::add`), on the same numbers: bit for bit.
                    let layer = &self.layers[(r - 1) / 2];
                    let added = if r % 2 == 1 { &layer.attn_out } else { &layer.mlp_out };
                    let mut sum = x.into_owned();
                    sum.iter_mut().zip(&added.data[span.clone()]).for_each(|(s, a)| *s += a);
                    Cow::Owned(sum)
                }
            };
            f(r, &x);
        }
        true
    }

    /// Rows `rows` (`[n × d]`) of the residual stream at point `r` (0:
    /// after the embeddings, then after each layer's attention and MLP):
    /// kept, or the kept point before it plus each attention's and MLP's
    /// output after that, the forward's own sums bit for bit. `None`
    /// outside the trace.
    pub fn stream_rows(&self, r: usize, rows: Range<usize>) -> Option<Cow<'_, [f32]>> {
        if let Some(m) = self.kept_stream(r) {
            let d = m.cols;
            return (rows.start <= rows.end && rows.end <= m.rows)
                .then(|| Cow::Borrowed(&m.data[rows.start * d..rows.end * d]));
        }
        let mut out = Vec::new();
        self.walk_stream(rows, r, |at, x| {
            if at == r {
                out = x.to_vec()
            }
        })
        .then_some(Cow::Owned(out))
    }

    /// Rows `rows` of layer `l`'s first norm: kept, or the model's norm of
    /// the stream entering the layer (row by row: bit for bit the forward's).
    pub fn ln_1(
        &self,
        config: &ModelConfig,
        weights: &Weights,
        l: usize,
        rows: Range<usize>,
    ) -> Option<Cow<'_, [f32]>> {
        let (layer, block) = (self.layers.get(l)?, weights.blocks.get(l)?);
        self.norm_rows(config, &layer.attention.ln_1, (2 * l, rows), (&block.ln_1_g, &block.ln_1_b))
    }

    /// Rows `rows` of layer `l`'s second norm: kept, or the model's norm of
    /// the stream after its attention (bit for bit the forward's).
    pub fn ln_2(
        &self,
        config: &ModelConfig,
        weights: &Weights,
        l: usize,
        rows: Range<usize>,
    ) -> Option<Cow<'_, [f32]>> {
        let (layer, block) = (self.layers.get(l)?, weights.blocks.get(l)?);
        self.norm_rows(config, &layer.ln_2, (2 * l + 1, rows), (&block.ln_2_g, &block.ln_2_b))
    }

    /// Rows of a norm: `kept`, or the model's norm (`gain`, `bias`) of the
    /// stream's rows at `point`.
    fn norm_rows<'a>(
        &'a self,
        config: &ModelConfig,
        kept: &'a Option<Matrix>,
        (point, rows): (usize, Range<usize>),
        (gain, bias): (&Tensor, &Tensor),
    ) -> Option<Cow<'a, [f32]>> {
        match kept {
            Some(m) => kept_rows(m, rows),
            None => Some(Cow::Owned(norm(config, &self.stream_rows(point, rows)?, gain, bias))),
        }
    }

    /// Rows `rows` (`[n × n_inner]`) of layer `l`'s MLP hidden layer: kept,
    /// or the MLP's first product and activation on [`ln_2`](Self::ln_2)'s
    /// rows (the forward's operations; a product on other rows may round
    /// its last bit otherwise).
    pub fn mlp_hidden(
        &self,
        config: &ModelConfig,
        weights: &Weights,
        l: usize,
        rows: Range<usize>,
    ) -> Option<Cow<'_, [f32]>> {
        match &self.layers.get(l)?.mlp_hidden {
            Some(m) => kept_rows(m, rows),
            None => {
                let ln_2 = self.ln_2(config, weights, l, rows)?;
                Some(Cow::Owned(mlp_hidden(config, weights.blocks.get(l)?, &ln_2)))
            }
        }
    }
}

/// Rows `rows` of a kept matrix; `None` past its end.
fn kept_rows(m: &Matrix, rows: Range<usize>) -> Option<Cow<'_, [f32]>> {
    let c = m.cols;
    (rows.start <= rows.end && rows.end <= m.rows).then(|| Cow::Borrowed(&m.data[rows.start * c..rows.end * c]))
}

/// What a CPU trace keeps besides every per-token stage (see
/// [`trace_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceKeeps {
    /// Each query head's T×T weights (else each row's softmax max and sum).
    pub weights: bool,
    /// Every position's logits (else the last position's alone).
    pub every_logits: bool,
    /// Each layer's norms, residual stream and MLP hidden layer (else
    /// computed when read from the embeddings and each layer's attention
    /// and MLP outputs: [`Trace::stream_rows`]).
    pub block_stages: bool,
}

impl TraceKeeps {
    /// Everything: what [`forward_cpu`](super::forward_cpu) keeps.
    pub const ALL: TraceKeeps = TraceKeeps { weights: true, every_logits: true, block_stages: true };
    /// The page's long CPU texts: none of the weights, no logits row but
    /// the last, no block stage it can compute when read.
    pub const LEAST: TraceKeeps = TraceKeeps { weights: false, every_logits: false, block_stages: false };
}

/// Bytes of a whole CPU [`Trace`] of `t` tokens (every stage it keeps,
/// f32): what the CPU engine holds for one run, with each query head's T×T
/// weights or without, every position's logits or the last's (`keeps`).
/// The weights dominate a long text: 0.28 GB for SmolLM2 (270 heads) at
/// T = 512.
pub fn trace_bytes(config: &ModelConfig, t: usize, keeps: TraceKeeps) -> u64 {
    let t = t as u64;
    let (d, m, vocab, d_head) =
        (config.n_embd as u64, config.n_inner as u64, config.vocab_size as u64, config.d_head() as u64);
    let heads = (config.n_layer * config.n_head) as u64;
    let kv_heads = (config.n_layer * config.n_kv_head.min(config.n_head)) as u64;
    let rope = u64::from(config.architecture.is_llama_family());
    // Per query head: the weights (when kept), each row's softmax max and
    // sum, q and the output (and Q before RoPE); per KV head, shared by its
    // query heads: k and v (and K before RoPE).
    let per_head = u64::from(keeps.weights) * t * t + 2 * t + (2 + rope) * t * d_head;
    let per_kv_head = (2 + rope) * t * d_head;
    // attn_out and mlp_out (T×d); kept or computed when read: ln_1,
    // resid_mid, ln_2, resid_post (T×d) and mlp_hidden (T×n_inner).
    let per_layer = t * (2 * d) + u64::from(keeps.block_stages) * t * (4 * d + m);
    let logit_rows = if keeps.every_logits { t } else { t.min(1) };
    let values =
        heads * per_head + kv_heads * per_kv_head + config.n_layer as u64 * per_layer + 2 * t * d + logit_rows * vocab;
    values.saturating_mul(4)
}

/// The most tokens (up to the context) whose [`trace_bytes`] fit in
/// `budget`, keeping what `keeps` says; 0 if not one.
pub fn most_traced_tokens(config: &ModelConfig, budget: u64, keeps: TraceKeeps) -> usize {
    let (mut lo, mut hi) = (0, config.n_positions);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if trace_bytes(config, mid, keeps) <= budget {
            lo = mid
        } else {
            hi = mid - 1
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::engine::forward_cpu;
    use crate::engine::stepwise::TraceRun;
    use crate::model::Model;

    /// Every buffer of a real trace, counted once: what `trace_bytes`
    /// estimates (the query heads of a group hold their KV head's k, v and
    /// K before RoPE in one buffer each).
    fn counted(trace: &Trace) -> u64 {
        let m = |x: &Matrix| x.data.len() as u64;
        let mut seen = std::collections::HashSet::new();
        let mut once = |x: &Arc<Matrix>| if seen.insert(Arc::as_ptr(x)) { m(x) } else { 0 };
        let mut values = m(&trace.embeddings) + m(&trace.ln_f) + m(&trace.logits);
        for l in &trace.layers {
            values += m(&l.attn_out) + m(&l.mlp_out);
            values += [&l.attention.ln_1, &l.resid_mid, &l.ln_2, &l.mlp_hidden, &l.resid_post]
                .into_iter()
                .map(|x| x.as_ref().map_or(0, m))
                .sum::<u64>();
            for h in l.heads() {
                assert!(h.scores_read.is_none(), "the CPU keeps no raw scores");
                let kept = h.kept_weights.as_ref().map_or(0, |w| w.side() * w.side()) as u64;
                values += kept + h.softmax.as_ref().map_or(0, m) + m(&h.q) + m(&h.output);
                values += h.q_pre_rope.as_ref().map_or(0, m);
                values += once(&h.k) + once(&h.v) + h.k_pre_rope.as_ref().map_or(0, &mut once);
            }
        }
        4 * values
    }

    /// The query heads of a group hold their KV head's K and V (one buffer,
    /// not a copy each), and the raw scores computed on reading are Q·Kᵀ of
    /// what the head keeps, the mask applied after the scaling.
    #[test]
    fn grouped_heads_share_their_kv_head_and_raw_scores_are_q_dot_k() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-tiny");
        let model = Model::load_dir_tokenizer_optional(&path).unwrap().0;
        let config = &model.config;
        let group = config.n_head / config.n_kv_head;
        assert!(group > 1, "the fixture groups its heads");
        let tokens: Vec<Token> = (0..6u32)
            .map(|i| Token { id: i * 5 % config.vocab_size as u32, text: String::new(), start: 0, end: 0 })
            .collect();
        let trace = forward_cpu(config, &model.weights, tokens, Mask::Causal).unwrap();
        for layer in &trace.layers {
            let heads = layer.heads();
            for (h, head) in heads.iter().enumerate() {
                assert_eq!(head.kv_head, Some(h / group));
                let first = &heads[h / group * group];
                assert!(Arc::ptr_eq(&head.k, &first.k) && Arc::ptr_eq(&head.v, &first.v), "head {h}");
                let k_pre = (head.k_pre_rope.as_ref().unwrap(), first.k_pre_rope.as_ref().unwrap());
                assert!(Arc::ptr_eq(k_pre.0, k_pre.1));
                if let Some(before) = (h / group * group).checked_sub(1) {
                    assert!(!Arc::ptr_eq(&head.k, &heads[before].k), "head {h}: groups apart");
                }
                let (raw, scaled, masked) = (head.scores_raw(), head.scores_scaled(), head.scores_masked());
                for i in 0..head.tokens() {
                    for j in 0..head.tokens() {
                        let want: f32 = head.q.row(i).iter().zip(head.k.row(j)).map(|(a, b)| a * b).sum();
                        assert!((raw.at(i, j) - want).abs() <= 1e-5 * (1.0 + want.abs()), "({i}, {j})");
                        assert_eq!(raw.at(i, j).to_bits(), head.raw(i, j).to_bits());
                        assert_eq!(scaled.at(i, j), raw.at(i, j) * head.scale());
                        let m = if j > i { f32::NEG_INFINITY } else { scaled.at(i, j) };
                        assert_eq!(masked.at(i, j), m);
                    }
                }
            }
        }
    }

    #[test]
    fn trace_bytes_counts_every_matrix_of_a_trace() {
        for dir in ["gpt2-tiny", "llama-tiny", "llama-tiny-mha"] {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
            let model = Model::load_dir_tokenizer_optional(&path).unwrap().0;
            let config = &model.config;
            let layouts =
                (0..8).map(|k| TraceKeeps { weights: k & 1 == 1, every_logits: k & 2 == 2, block_stages: k & 4 == 4 });
            for keeps in layouts.clone() {
                for t in [1, 5, 13] {
                    let tokens = (0..t as u32)
                        .map(|i| Token { id: i * 7 % config.vocab_size as u32, text: String::new(), start: 0, end: 0 })
                        .collect();
                    let run = TraceRun::new(config, &model.weights, None, tokens, Mask::Causal).unwrap();
                    let run = run.keeping_weights(keeps.weights).every_logits(keeps.every_logits);
                    let trace = run.keeping_stages(keeps.block_stages).finish();
                    assert_eq!(trace.keeps_every_logits_row(), keeps.every_logits || t == 1);
                    assert_eq!(trace_bytes(config, t, keeps), counted(&trace), "{dir} T={t} {keeps:?}");
                }
                // The most tokens within a budget: that many fit, one more does not.
                let budget = trace_bytes(config, 9, keeps) + 1;
                assert_eq!(most_traced_tokens(config, budget, keeps), 9, "{dir}");
                assert_eq!(most_traced_tokens(config, 0, keeps), 0);
                assert_eq!(most_traced_tokens(config, u64::MAX, keeps), config.n_positions);
            }
            let t = config.n_positions / 2;
            let lazy = TraceKeeps { weights: false, ..TraceKeeps::ALL };
            let kept = most_traced_tokens(config, trace_bytes(config, t, lazy), TraceKeeps::ALL);
            let last_row = TraceKeeps { every_logits: false, ..lazy };
            let every = most_traced_tokens(config, trace_bytes(config, t, last_row), lazy);
            let stages = most_traced_tokens(config, trace_bytes(config, t, TraceKeeps::LEAST), last_row);
            assert!(stages < t, "{dir}: without the block stages, more tokens fit the same bytes ({stages} with them)");
            assert!(
                every < t,
                "{dir}: with the last logits row alone, more tokens fit the same bytes ({every} with every row)"
            );
            assert!(kept < t, "{dir}: without the weights, more tokens fit the same bytes ({kept} with them)");
        }
    }
}
