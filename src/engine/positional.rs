//! How a model knows where a token is, from the loaded model's own numbers:
//! for learned positions (GPT-2) the cosine similarity of its position
//! vectors; for RoPE (the Llama family) the rotation frequency of each
//! dimension pair and the dot product of one vector with itself rotated
//! `m` positions apart (the decay with distance), rotated by the engine's
//! own [`ops::rope`]. The positional panel draws these and
//! `attnscope positions` prints them.

use serde::Serialize;

use super::ops;
use crate::model::{ModelConfig, Tensor};

/// How many learned positions the similarity map covers (GPT-2 small has 1,024: a 128² map stays readable).
pub const LEARNED_SHOWN: usize = 128;
/// The farthest distance of the decay curve (it also stops at the context).
pub const DECAY_MAX: usize = 1 << 16;

/// What the positional panel shows for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Positions {
    /// GPT-2: `similarity[i][j]` is the cosine similarity of the position
    /// vectors of positions i and j (the first `similarity.len()` positions).
    Learned { similarity: Vec<Vec<f32>> },
    /// RoPE: per pair i of a head's dimensions, its angle per position
    /// (radians, `inv_freq[i]`, Llama 3's scaling applied) and wavelength
    /// (2π / inv_freq[i], in tokens); and at each distance m of `distances`,
    /// q·R(m)q / q·q for q of all ones (1 at m = 0, the mean of cos(m·θᵢ)).
    Rope { theta: f32, inv_freq: Vec<f32>, wavelength: Vec<f32>, distances: Vec<usize>, decay: Vec<f32> },
}

/// Distances for the decay curve: every one up to 16, then about 12 per
/// factor of two, up to `max` (included).
pub fn decay_distances(max: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (0..=max.min(16)).collect();
    let mut m = 16.0f64;
    while (m as usize) < max {
        m *= 2f64.powf(1.0 / 12.0);
        let d = (m.round() as usize).min(max);
        if out.last() != Some(&d) {
            out.push(d);
        }
    }
    out
}

/// The cosine similarity of the first `n` rows of `wpe` (`[n_positions, d]`) with each other.
pub fn position_similarity(wpe: &Tensor, n: usize) -> Vec<Vec<f32>> {
    let (rows, d) = match wpe.shape.as_slice() {
        &[rows, d] if rows * d == wpe.data.len() => (rows, d),
        _ => return Vec::new(),
    };
    let n = n.min(rows);
    let row = |i: usize| &wpe.data[i * d..(i + 1) * d];
    let norms: Vec<f64> = (0..n).map(|i| row(i).iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()).collect();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let dot: f64 = row(i).iter().zip(row(j)).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                    let denom = norms[i] * norms[j];
                    if denom > 0.0 {
                        (dot / denom) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

/// q·R(m)q / q·q for q of all ones, at each distance: q rotated by the
/// engine's RoPE at position m, dotted with q unrotated (position 0).
pub fn rope_decay(inv_freq: &[f32], distances: &[usize]) -> Vec<f32> {
    let d_head = 2 * inv_freq.len();
    if d_head == 0 {
        return Vec::new();
    }
    distances
        .iter()
        .map(|&m| {
            let mut q = vec![1.0f32; d_head];
            ops::rope(&mut q, 1, d_head, 1, d_head, m, inv_freq);
            (q.iter().map(|&v| f64::from(v)).sum::<f64>() / d_head as f64) as f32
        })
        .collect()
}

/// The positional numbers of a model: learned (`wpe`, the first `learned_n`
/// positions) or RoPE (decay up to `max_distance`, at most the context).
pub fn positions(config: &ModelConfig, wpe: Option<&Tensor>, learned_n: usize, max_distance: usize) -> Positions {
    match (config.rope_theta, wpe) {
        (Some(theta), _) => {
            let inv_freq = config.rope_inv_freq();
            let wavelength = inv_freq.iter().map(|&f| std::f32::consts::TAU / f).collect();
            let distances = decay_distances(max_distance.min(config.n_positions.saturating_sub(1)));
            let decay = rope_decay(&inv_freq, &distances);
            Positions::Rope { theta, inv_freq, wavelength, distances, decay }
        }
        (None, Some(wpe)) => Positions::Learned { similarity: position_similarity(wpe, learned_n) },
        (None, None) => Positions::Learned { similarity: Vec::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_starts_at_one_and_equals_the_mean_cosine_of_the_pairs() {
        let inv_freq = [1.0f32, 0.1, 0.01, 0.001];
        let distances = [0usize, 1, 7, 100];
        let decay = rope_decay(&inv_freq, &distances);
        assert!((decay[0] - 1.0).abs() < 1e-6);
        for (&m, &got) in distances.iter().zip(&decay) {
            let want = inv_freq.iter().map(|&f| (m as f64 * f as f64).cos()).sum::<f64>() / 4.0;
            assert!((got as f64 - want).abs() < 1e-5, "m = {m}: {got} vs {want}");
        }
        assert!(decay[3] < decay[1], "far apart, less alike");
    }

    #[test]
    fn distances_are_dense_then_geometric_and_end_at_the_max() {
        let d = decay_distances(2047);
        assert_eq!(&d[..17], &(0..=16).collect::<Vec<_>>()[..]);
        assert_eq!(*d.last().unwrap(), 2047);
        assert!(d.windows(2).all(|w| w[0] < w[1]));
        assert!(d.len() < 140, "{} points", d.len());
        assert_eq!(decay_distances(5), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(decay_distances(0), vec![0]);
    }

    #[test]
    fn position_similarity_is_one_on_the_diagonal_and_symmetric() {
        let wpe = Tensor { shape: vec![3, 2], data: vec![1.0, 0.0, 1.0, 1.0, 0.0, 2.0] };
        let s = position_similarity(&wpe, 10);
        assert_eq!(s.len(), 3);
        for (i, row) in s.iter().enumerate() {
            assert!((row[i] - 1.0).abs() < 1e-6);
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, s[j][i]);
            }
        }
        assert!((s[0][1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(s[0][2].abs() < 1e-6);
        assert!(position_similarity(&Tensor { shape: vec![3], data: vec![0.0; 3] }, 3).is_empty());
    }

    #[test]
    fn a_rope_config_gives_its_own_frequencies_and_a_learned_one_its_similarity() {
        let llama = ModelConfig::llama((2, 4, 2, 16), 64, 96, 128, 100);
        let Positions::Rope { inv_freq, wavelength, distances, decay, .. } = positions(&llama, None, 64, 4096) else {
            panic!("RoPE expected")
        };
        assert_eq!(inv_freq, llama.rope_inv_freq());
        assert_eq!(inv_freq.len(), llama.d_head() / 2);
        assert!((wavelength[0] - std::f32::consts::TAU).abs() < 1e-5, "pair 0 turns one radian a token");
        assert_eq!(*distances.last().unwrap(), 127, "bounded by the context");
        assert_eq!(decay.len(), distances.len());
        let gpt2 = ModelConfig::gpt2(1, 2, 4, 8, 10);
        let wpe = Tensor { shape: vec![8, 4], data: (0..32).map(|i| (i as f32 * 0.37).sin()).collect() };
        let Positions::Learned { similarity } = positions(&gpt2, Some(&wpe), 5, 0) else { panic!("learned expected") };
        assert_eq!(similarity.len(), 5);
    }
}
