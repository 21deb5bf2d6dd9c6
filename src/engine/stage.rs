//! The attention stages a learner steps through for one head, in the order
//! the computation happens: what each is called, the formula it shows, and
//! where its numbers live in a [`HeadTrace`].

use std::borrow::Cow;
use std::ops::Range;

use super::square::MatrixView;
use super::trace::{HeadTrace, Matrix};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionStage {
    /// RoPE models: Q and K before the rotation (`Q` and `K` are after it).
    QPreRope,
    KPreRope,
    Q,
    K,
    V,
    ScoresRaw,
    ScoresScaled,
    ScoresMasked,
    Weights,
    Output,
}

impl AttentionStage {
    /// Every model's stages, in the order of the computation: [`Self::ROPE`]
    /// without the two before the rotation.
    pub const ALL: [AttentionStage; 8] = {
        let mut all = [AttentionStage::Q; 8];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::ROPE[i + 2];
            i += 1;
        }
        all
    };

    /// A short name for buttons and the URL.
    pub fn key(self) -> &'static str {
        match self {
            AttentionStage::QPreRope => "q_pre",
            AttentionStage::KPreRope => "k_pre",
            AttentionStage::Q => "q",
            AttentionStage::K => "k",
            AttentionStage::V => "v",
            AttentionStage::ScoresRaw => "raw",
            AttentionStage::ScoresScaled => "scaled",
            AttentionStage::ScoresMasked => "masked",
            AttentionStage::Weights => "weights",
            AttentionStage::Output => "out",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ROPE.into_iter().find(|s| s.key() == key)
    }

    /// A RoPE model's stages: Q and K before the rotation, then [`Self::ALL`].
    pub const ROPE: [AttentionStage; 10] = [
        AttentionStage::QPreRope,
        AttentionStage::KPreRope,
        AttentionStage::Q,
        AttentionStage::K,
        AttentionStage::V,
        AttentionStage::ScoresRaw,
        AttentionStage::ScoresScaled,
        AttentionStage::ScoresMasked,
        AttentionStage::Weights,
        AttentionStage::Output,
    ];

    /// The stages a model has: with RoPE, Q and K before the rotation too.
    pub fn all(rope: bool) -> &'static [AttentionStage] {
        if rope {
            &Self::ROPE
        } else {
            &Self::ALL
        }
    }

    /// The stage `by` steps along [`Self::ALL`], stopping at the first and last.
    pub fn step(self, by: isize) -> Self {
        self.step_in(&Self::ALL, by)
    }

    /// The stage `by` steps along `stages` (from the first when this one is not in it), stopping at the ends.
    pub fn step_in(self, stages: &[AttentionStage], by: isize) -> Self {
        let Some(last) = stages.len().checked_sub(1) else { return self };
        let at = stages.iter().position(|&s| s == self).unwrap_or(0) as isize;
        stages[(at + by).clamp(0, last as isize) as usize]
    }

    /// The stage's title.
    pub fn title(self) -> &'static str {
        match self {
            AttentionStage::QPreRope => "Q before RoPE",
            AttentionStage::KPreRope => "K before RoPE",
            AttentionStage::Q => "Queries Q",
            AttentionStage::K => "Keys K",
            AttentionStage::V => "Values V",
            AttentionStage::ScoresRaw => "Scores Q·Kᵀ",
            AttentionStage::ScoresScaled => "Scaled ÷ √d_head",
            AttentionStage::ScoresMasked => "Masked",
            AttentionStage::Weights => "Softmax weights",
            AttentionStage::Output => "Output A·V",
        }
    }

    /// One line: the formula and how to read the map.
    pub fn caption(self) -> &'static str {
        match self {
            AttentionStage::QPreRope => {
                "Q = ln₁(x)·W_Q before RoPE: what each token looks for, not yet turned by its position (T × d_head)."
            }
            AttentionStage::KPreRope => {
                "K = ln₁(x)·W_K before RoPE: what each token offers, not yet turned by its position (T × d_head)."
            }
            AttentionStage::Q => "Q = ln₁(x)·W_Q: one row per token, what it is looking for (T × d_head).",
            AttentionStage::K => "K = ln₁(x)·W_K: one row per token, what it offers to be found by (T × d_head).",
            AttentionStage::V => "V = ln₁(x)·W_V: one row per token, what it passes on when attended to (T × d_head).",
            AttentionStage::ScoresRaw => {
                "S = Q·Kᵀ: row i, column j is how well query i matches key j (signed, unbounded)."
            }
            AttentionStage::ScoresScaled => {
                "S / √d_head keeps the scores' spread independent of the head size, so softmax does not saturate."
            }
            AttentionStage::ScoresMasked => {
                "+ mask: −∞ where a query may not look (hatched); those keys get weight 0 after softmax."
            }
            AttentionStage::Weights => {
                "A = softmax(row): the attention weights; each row is a probability distribution over the keys; every row sums to 1."
            }
            AttentionStage::Output => "O = A·V: each token's new vector, a weighted mix of the values (T × d_head).",
        }
    }

    /// Whether the values are signed (a diverging colour map) rather than in [0, 1].
    pub fn signed(self) -> bool {
        self != AttentionStage::Weights
    }

    /// Whether the matrix is T×T (rows are queries, columns are keys) rather than T×d_head.
    pub fn square(self) -> bool {
        matches!(
            self,
            AttentionStage::ScoresRaw
                | AttentionStage::ScoresScaled
                | AttentionStage::ScoresMasked
                | AttentionStage::Weights
        )
    }

    /// Whether masked cells are drawn as masked.
    pub fn shows_mask(self) -> bool {
        matches!(self, AttentionStage::ScoresMasked | AttentionStage::Weights)
    }

    /// The stage's matrix in a head's trace, as a matrix of its own where
    /// the trace does not keep it dense: the raw scores are computed from Q
    /// and K (or copied from those a GPU run read back), the scaled and
    /// masked ones from them, and the weights copied out of their
    /// [`SquareMatrix`](super::SquareMatrix) (read them in place with
    /// [`view`](Self::view)) or, where the trace keeps none, computed.
    pub fn matrix(self, head: &HeadTrace) -> Cow<'_, Matrix> {
        match self {
            AttentionStage::ScoresRaw => Cow::Owned(head.scores_raw()),
            AttentionStage::ScoresScaled => Cow::Owned(head.scores_scaled()),
            AttentionStage::ScoresMasked => Cow::Owned(head.scores_masked()),
            AttentionStage::Weights => Cow::Owned(head.weights().to_matrix()),
            _ => Cow::Borrowed(self.dense(head).expect("a per-token stage is kept dense")),
        }
    }

    /// Rows `rows` of [`matrix`](Self::matrix) (`rows.len() × cols`,
    /// row-major), bit for bit its rows (each row is computed on its own
    /// there too): what a caller that gives the thread back between pieces
    /// computes a large map in (SmolLM2's at T = 2,048: 268 million
    /// multiply-adds). `None` past the matrix's rows.
    pub fn matrix_rows(self, head: &HeadTrace, rows: Range<usize>) -> Option<Vec<f32>> {
        let t = head.tokens();
        if rows.start > rows.end || rows.end > t {
            return None;
        }
        let scaled = |masked: bool| {
            let (raw, scale) = (head.scores_raw_rows(rows.clone()), head.scale());
            let cols = raw.len() / rows.len().max(1);
            let cell = |(k, &r): (usize, &f32)| {
                let (i, j) = (rows.start + k / cols.max(1), k % cols.max(1));
                if masked && !head.mask.allows(i, j) {
                    f32::NEG_INFINITY
                } else {
                    r * scale
                }
            };
            raw.iter().enumerate().map(cell).collect()
        };
        Some(match self {
            AttentionStage::ScoresRaw => head.scores_raw_rows(rows),
            AttentionStage::ScoresScaled => scaled(false),
            AttentionStage::ScoresMasked => scaled(true),
            AttentionStage::Weights => head.weight_rows(rows),
            _ => {
                let m = self.dense(head)?;
                m.data.get(rows.start * m.cols..rows.end * m.cols)?.to_vec()
            }
        })
    }

    /// The stage's values where the trace keeps them, read in place; `None`
    /// for the scores, which it computes ([`matrix`](Self::matrix)) unless a
    /// GPU run's were read back, and for weights it does not keep.
    pub fn view(self, head: &HeadTrace) -> Option<MatrixView<'_>> {
        match self {
            AttentionStage::ScoresRaw => head.scores_read.as_ref().map(|m| m.view()),
            AttentionStage::Weights => head.kept_weights.as_ref().map(|w| w.view()),
            _ => self.dense(head).map(Matrix::view),
        }
    }

    /// The per-token stages' matrices (T×d_head), kept dense in the trace.
    fn dense(self, head: &HeadTrace) -> Option<&Matrix> {
        Some(match self {
            // Learned positions (GPT-2) rotate nothing: before is after.
            AttentionStage::QPreRope => head.q_pre_rope.as_ref().unwrap_or(&head.q),
            AttentionStage::KPreRope => head.k_pre_rope.as_ref().unwrap_or(&head.k),
            AttentionStage::Q => &head.q,
            AttentionStage::K => &head.k,
            AttentionStage::V => &head.v,
            AttentionStage::Output => &head.output,
            AttentionStage::ScoresRaw
            | AttentionStage::ScoresScaled
            | AttentionStage::ScoresMasked
            | AttentionStage::Weights => return None,
        })
    }

    /// Cell (`row`, `col`) of the stage's matrix in a head's trace, if inside it.
    pub fn cell(self, head: &HeadTrace, row: usize, col: usize) -> Option<f32> {
        match self {
            AttentionStage::ScoresRaw => (row < head.tokens() && col < head.tokens()).then(|| head.raw(row, col)),
            AttentionStage::ScoresScaled | AttentionStage::ScoresMasked => (row < head.tokens() && col < head.tokens())
                .then(|| head.score(row, col, self == AttentionStage::ScoresMasked)),
            AttentionStage::Weights => (row < head.tokens() && col < head.tokens()).then(|| head.weight(row, col)),
            _ => {
                let m = self.view(head)?;
                (row < m.rows && col < m.cols).then(|| m.at(row, col))
            }
        }
    }
}

/// The query heads that share `head`'s K and V (first, last), when heads are
/// grouped on fewer KV heads (`n_head / n_kv_head` per group); `None` with
/// full multi-head attention, where each head has its own.
pub fn kv_sharers(n_head: usize, n_kv_head: usize, head: usize) -> Option<(usize, usize)> {
    if n_kv_head == 0 || n_kv_head >= n_head || head >= n_head {
        return None;
    }
    let group = n_head / n_kv_head;
    let first = head / group * group;
    Some((first, first + group - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_sharing_a_kv_head_are_its_group() {
        assert_eq!(kv_sharers(9, 3, 4), Some((3, 5)));
        assert_eq!(kv_sharers(9, 3, 0), Some((0, 2)));
        assert_eq!(kv_sharers(4, 2, 3), Some((2, 3)));
        assert_eq!(kv_sharers(4, 1, 3), Some((0, 3)), "one KV head for all");
        assert_eq!(kv_sharers(12, 12, 5), None, "full multi-head");
        assert_eq!(kv_sharers(4, 2, 4), None, "no such head");
    }

    #[test]
    fn stepping_follows_the_computation_and_stops_at_the_ends() {
        assert_eq!(AttentionStage::Q.step(1), AttentionStage::K);
        assert_eq!(AttentionStage::Q.step(-1), AttentionStage::Q);
        assert_eq!(AttentionStage::Output.step(1), AttentionStage::Output);
        assert_eq!(AttentionStage::Weights.step(-3), AttentionStage::ScoresRaw);
        assert_eq!(AttentionStage::K.step(100), AttentionStage::Output);
        let rope = AttentionStage::all(true);
        assert_eq!(AttentionStage::Q.step_in(rope, -1), AttentionStage::KPreRope);
        assert_eq!(AttentionStage::QPreRope.step_in(rope, -1), AttentionStage::QPreRope);
        assert_eq!(AttentionStage::KPreRope.step_in(AttentionStage::all(false), 1), AttentionStage::K);
    }

    #[test]
    fn keys_round_trip_and_are_distinct() {
        for s in AttentionStage::ALL {
            assert_eq!(AttentionStage::from_key(s.key()), Some(s));
        }
        for s in AttentionStage::ROPE {
            assert_eq!(AttentionStage::from_key(s.key()), Some(s));
        }
        assert_eq!(AttentionStage::from_key("softmax"), None);
    }
}
