//! The residual stream through the blocks, as the block view shows it: each
//! token's vector norm after the embeddings and after each half of every
//! block, and the most active MLP neurons of one token.

use super::trace::{Matrix, Trace};

/// Rows of [`residual_norms`]: the embeddings, then per layer the stream
/// after attention (resid_mid) and after the MLP (resid_post).
pub fn residual_points(n_layer: usize) -> usize {
    2 * n_layer + 1
}

/// What row `r` of [`residual_norms`] is, in words.
pub fn residual_point_name(r: usize) -> String {
    match r {
        0 => "embeddings".into(),
        r if r % 2 == 1 => format!("L{} + attention", r / 2),
        r => format!("L{} + MLP", r / 2 - 1),
    }
}

/// ‖x‖₂ of each row of a `rows × d` slice, summed in f32 in column order
/// (as shaders/row_norms.wgsl does).
pub fn row_norms(x: &[f32], d: usize) -> Vec<f32> {
    x.chunks(d.max(1)).map(|row| row.iter().map(|&v| v * v).sum::<f32>().sqrt()).collect()
}

/// `(2·n_layer + 1) × T`: each token's residual norm after the embeddings and
/// after each half of every block.
pub fn residual_norms(trace: &Trace) -> Matrix {
    let t = trace.tokens.len();
    let d = trace.embeddings.cols;
    let points = residual_points(trace.layers.len());
    // Each point once, in order (a point the trace computes when read is the one before it plus a sum).
    let mut norms = Vec::with_capacity(points * t);
    let walked = trace.walk_stream(0..t, points - 1, |_, x| norms.extend(row_norms(x, d)));
    Matrix::from_vec(if walked { points } else { 0 }, t, norms)
}

/// The `k` largest values of `values` with their indices, largest first
/// (ties: lower index first).
pub fn top_indices(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    // By selection (a vocabulary's full sort was most of a lens point's time in the page).
    let keys: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    super::rank::first(&keys, k, super::rank::Direction::Descending).into_iter().map(|i| (i, values[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_and_names_follow_the_blocks() {
        assert_eq!(row_norms(&[3.0, 4.0, 0.0, 1.0], 2), vec![5.0, 1.0]);
        assert_eq!(residual_points(3), 7);
        assert_eq!(residual_point_name(0), "embeddings");
        assert_eq!(residual_point_name(1), "L0 + attention");
        assert_eq!(residual_point_name(2), "L0 + MLP");
        assert_eq!(residual_point_name(6), "L2 + MLP");
        assert_eq!(top_indices(&[0.5, 2.0, -1.0, 2.0], 2), vec![(1, 2.0), (3, 2.0)]);
    }

    #[test]
    fn top_indices_by_selection_equal_the_full_sort_with_ties() {
        let mut seed = 7u64;
        for n in [0usize, 1, 2, 9, 100, 1000] {
            // Few distinct values, so ties are everywhere.
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 33) % 7) as f32 - 3.0
                })
                .collect();
            let mut sorted: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
            sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for k in [0, 1, 2, 5, n.saturating_sub(1), n, n + 3] {
                let want: Vec<_> = sorted.iter().copied().take(k).collect();
                assert_eq!(top_indices(&values, k), want, "n {n}, k {k}");
            }
        }
    }
}
