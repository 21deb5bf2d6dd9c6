//! Turning logits into the next token: temperature, top-k, top-p (nucleus)
//! and a seeded random number generator, so a seed reproduces a continuation.

use serde::Serialize;
use thiserror::Error;

/// Why no token could be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum SamplingError {
    #[error("there are no logits to sample from")]
    Empty,
    #[error("logit {index} is {value}: a distribution over tokens needs finite logits")]
    NonFiniteLogit { index: usize, value: f32 },
    #[error("the probabilities do not form a distribution (they sum to {sum})")]
    NotADistribution { sum: f64 },
}

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token); 1 leaves logits as they are.
    pub temperature: f32,
    /// Keep only the k most likely tokens (None: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p (None: all).
    pub top_p: Option<f32>,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 1.0, top_k: None, top_p: None, seed: 0 }
    }
}

/// SplitMix64: small, fast, and the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// softmax(logits / temperature) in f64 for stable sums; temperature 0 puts
/// all probability on the first most likely token.
pub fn probabilities(logits: &[f32], temperature: f32) -> Vec<f64> {
    if logits.is_empty() {
        return Vec::new();
    }
    if temperature <= 0.0 {
        let best = argmax(logits);
        return (0..logits.len()).map(|i| if i == best { 1.0 } else { 0.0 }).collect();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let t = temperature as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| ((l as f64 - max) / t).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// The tokens sampling may choose from, most likely first (ties: lower id
/// first), with their probabilities renormalised over the kept set.
pub fn candidates(probs: &[f64], top_k: Option<usize>, top_p: Option<f32>) -> Vec<(u32, f64)> {
    let k = top_k.map_or(probs.len(), |k| k.max(1));
    let first = super::rank::first(probs, k, super::rank::Direction::Descending);
    let mut order: Vec<(u32, f64)> = first.into_iter().map(|i| (i as u32, probs[i])).collect();
    if let Some(p) = top_p {
        let mut cumulative = 0.0;
        let keep = order
            .iter()
            .position(|&(_, q)| {
                cumulative += q;
                cumulative >= p as f64 - 1e-12
            })
            .map_or(order.len(), |i| i + 1);
        order.truncate(keep.max(1));
    }
    let total: f64 = order.iter().map(|&(_, q)| q).sum();
    if total > 0.0 {
        order.iter_mut().for_each(|(_, q)| *q /= total);
    }
    order
}

/// A sampled token with the probability it had, before and after filtering.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sampled {
    pub id: u32,
    /// Its probability under softmax(logits / temperature).
    pub prob: f64,
    /// Its probability within the top-k/top-p set it was drawn from.
    pub prob_kept: f64,
}

/// Draws the next token from `logits`; `None` where [`try_sample`] refuses.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut Rng) -> Option<Sampled> {
    try_sample(logits, params, rng).ok()
}

/// Draws the next token from `logits`, refusing logits that are NaN or +∞
/// (−∞ is a token ruled out) and probabilities that are not a distribution.
pub fn try_sample(logits: &[f32], params: &SamplingParams, rng: &mut Rng) -> Result<Sampled, SamplingError> {
    if let Some(index) = logits.iter().position(|l| l.is_nan() || *l == f32::INFINITY) {
        return Err(SamplingError::NonFiniteLogit { index, value: logits[index] });
    }
    let probs = probabilities(logits, params.temperature);
    let sum: f64 = probs.iter().sum();
    if !(sum.is_finite() && (sum - 1.0).abs() < 1e-6) {
        return Err(if probs.is_empty() { SamplingError::Empty } else { SamplingError::NotADistribution { sum } });
    }
    let kept = candidates(&probs, params.top_k, params.top_p);
    let &(first, first_p) = kept.first().ok_or(SamplingError::Empty)?;
    let mut pick = (first, first_p);
    if params.temperature > 0.0 && kept.len() > 1 {
        let u = rng.next_f64();
        let mut cumulative = 0.0;
        pick = *kept.last().ok_or(SamplingError::Empty)?;
        for &(id, q) in &kept {
            cumulative += q;
            if u < cumulative {
                pick = (id, q);
                break;
            }
        }
    }
    Ok(Sampled { id: pick.0, prob: probs[pick.0 as usize], prob_kept: pick.1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_exactly_the_k_most_likely() {
        let probs = [0.1, 0.4, 0.2, 0.3];
        let ids: Vec<u32> = candidates(&probs, Some(2), None).iter().map(|c| c.0).collect();
        assert_eq!(ids, vec![1, 3]);
    }

    #[test]
    fn top_k_by_selection_equals_the_full_sort_with_ties() {
        let mut rng = Rng::new(3);
        for n in [1usize, 2, 7, 100, 4096] {
            // Few distinct values, so ties are everywhere and the id order decides.
            let probs: Vec<f64> = (0..n).map(|_| (rng.next_u64() % 5) as f64 / 10.0).collect();
            let mut full: Vec<(u32, f64)> = probs.iter().enumerate().map(|(i, &p)| (i as u32, p)).collect();
            full.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for k in [1, 2, 10, n.saturating_sub(1).max(1), n, n + 5] {
                let got: Vec<u32> = candidates(&probs, Some(k), None).iter().map(|c| c.0).collect();
                let want: Vec<u32> = full.iter().take(k).map(|c| c.0).collect();
                assert_eq!(got, want, "n = {n}, k = {k}");
            }
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let probs = [0.1, 0.4, 0.2, 0.3];
        let kept = candidates(&probs, None, Some(0.7));
        assert_eq!(kept.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
        assert!((kept[0].1 - 0.4 / 0.7).abs() < 1e-12, "renormalised");
        assert_eq!(candidates(&probs, None, Some(0.71)).len(), 3);
        assert_eq!(candidates(&probs, None, Some(0.0)).len(), 1, "always at least one token");
    }

    #[test]
    fn greedy_is_deterministic_and_picks_the_argmax() {
        let logits = [0.5, 3.0, 2.9, -1.0];
        let params = SamplingParams { temperature: 0.0, ..Default::default() };
        for seed in 0..10 {
            let s = sample(&logits, &SamplingParams { seed, ..params }, &mut Rng::new(seed)).unwrap();
            assert_eq!(s.id, 1);
        }
    }

    #[test]
    fn a_seed_reproduces_and_different_seeds_differ() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = SamplingParams { temperature: 1.0, ..Default::default() };
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..20).map(|_| sample(&logits, &params, &mut rng).unwrap().id).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn sampling_frequencies_follow_the_probabilities() {
        let logits = [0.0f32, (2.0f32).ln(), (7.0f32).ln()]; // probabilities 0.1, 0.2, 0.7
        let params = SamplingParams::default();
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[sample(&logits, &params, &mut rng).unwrap().id as usize] += 1;
        }
        for (count, want) in counts.iter().zip([0.1, 0.2, 0.7]) {
            assert!((*count as f64 / 20_000.0 - want).abs() < 0.015, "{counts:?}");
        }
    }

    /// NaN logits (from NaN weights) made every step pick the last id with probability `null`.
    #[test]
    fn a_distribution_that_is_not_finite_is_refused() {
        let params = SamplingParams::default();
        let greedy = SamplingParams { temperature: 0.0, ..params };
        for p in [params, greedy] {
            let mut rng = Rng::new(0);
            for logits in [vec![0.5, f32::NAN, 1.0], vec![f32::INFINITY, 0.0], vec![f32::NAN; 4]] {
                let err = try_sample(&logits, &p, &mut rng).unwrap_err();
                assert!(matches!(err, SamplingError::NonFiniteLogit { .. }), "{logits:?}: {err}");
                assert_eq!(sample(&logits, &p, &mut rng), None);
            }
            let err = try_sample(&[f32::NEG_INFINITY; 3], &p, &mut rng);
            assert!(matches!(err, Err(SamplingError::NotADistribution { .. })) || p.temperature == 0.0, "{err:?}");
            assert_eq!(try_sample(&[], &p, &mut rng), Err(SamplingError::Empty));
            // −∞ rules a token out; the rest still sample.
            assert_eq!(try_sample(&[f32::NEG_INFINITY, 2.0], &p, &mut rng).unwrap().id, 1);
        }
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [1.0, 2.0];
        let cold = probabilities(&logits, 0.5);
        let hot = probabilities(&logits, 2.0);
        assert!(cold[1] > probabilities(&logits, 1.0)[1] && hot[1] < probabilities(&logits, 1.0)[1]);
    }
}
