//! `Trace`: every intermediate of a forward pass, with shapes, so the UI never recomputes.

use serde::Serialize;

use super::Mask;
use crate::model::Token;

/// A dense row-major f32 matrix.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix data does not match its shape");
        Self { rows, cols, data }
    }

    /// Columns `offset..offset + width` of the first `rows` rows of a row-major
    /// buffer whose rows are `stride` wide (one head's slice of Q, K, V or outputs).
    pub fn from_columns(all: &[f32], rows: usize, stride: usize, offset: usize, width: usize) -> Self {
        let data = (0..rows).flat_map(|i| all[i * stride + offset..][..width].iter().copied()).collect();
        Self { rows, cols: width, data }
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.cols + c]
    }

    /// Rows as nested lists; non-finite entries (masked scores) become `null`.
    pub fn to_rows(&self) -> Vec<Vec<Option<f32>>> {
        (0..self.rows).map(|r| self.row(r).iter().map(|&x| x.is_finite().then_some(x)).collect()).collect()
    }
}

impl Serialize for Matrix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_rows().serialize(s)
    }
}

/// One attention head of one layer.
#[derive(Debug, Clone, Serialize)]
pub struct HeadTrace {
    /// Queries, keys and values of this head, T×d_head each (after RoPE when the model has it).
    pub q: Matrix,
    pub k: Matrix,
    pub v: Matrix,
    /// Q·Kᵀ, T×T.
    pub scores_raw: Matrix,
    /// Q·Kᵀ / √d_head.
    pub scores_scaled: Matrix,
    /// Scaled scores with −∞ where the mask forbids (serialised as null).
    pub scores_masked: Matrix,
    /// Row softmax of the masked scores.
    pub weights: Matrix,
    /// Weights · V, T×d_head.
    pub output: Matrix,
    /// RoPE models: this head's Q and K before the rotation (`q` and `k` are
    /// after it: what is dotted). Absent for learned positions (GPT-2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_pre_rope: Option<Matrix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k_pre_rope: Option<Matrix>,
    /// The Llama family: which KV head this query head reads (its `k` and
    /// `v` are that head's, shared with the other heads of its group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_head: Option<usize>,
}

/// The attention half of a layer, up to the concatenated head outputs.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionTrace {
    /// Layernorm of the residual stream entering the layer, T×d.
    pub ln_1: Matrix,
    pub heads: Vec<HeadTrace>,
}

/// One transformer block.
#[derive(Debug, Clone, Serialize)]
pub struct LayerTrace {
    #[serde(flatten)]
    pub attention: AttentionTrace,
    /// concat(head outputs) · W_o + b_o, T×d.
    pub attn_out: Matrix,
    /// Residual stream after attention: resid_pre + attn_out, T×d.
    pub resid_mid: Matrix,
    /// ln_2(resid_mid), T×d.
    pub ln_2: Matrix,
    /// MLP hidden layer after the activation, T×n_inner (4d in GPT-2;
    /// silu(gate)·up in the Llama family).
    pub mlp_hidden: Matrix,
    /// MLP output, T×d.
    pub mlp_out: Matrix,
    /// Residual stream after the block: resid_mid + mlp_out, T×d.
    pub resid_post: Matrix,
}

impl LayerTrace {
    pub fn heads(&self) -> &[HeadTrace] {
        &self.attention.heads
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
    /// Next-token logits at every position, T×vocab.
    pub logits: Matrix,
}
