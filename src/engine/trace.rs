//! `Trace`: every intermediate of a forward pass, with shapes, so the UI never recomputes.

use serde::Serialize;

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
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerTrace {
    /// Layernorm of the residual stream entering the layer, T×d.
    pub ln_1: Matrix,
    pub heads: Vec<HeadTrace>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub tokens: Vec<Token>,
    pub layers: Vec<LayerTrace>,
}
