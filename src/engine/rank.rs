//! One sort for every ranking the page makes: the likeliest tokens, the
//! lens's top entries, the heads a template ranks, a decomposition's terms,
//! two prompts' differences, chart labels left to right, timings' medians.
//! Each `sort_by` with a closure of its own is a copy of the standard
//! library's sort in the wasm (~3 kB each, 21 of them once): these sort
//! indices by a key through the one comparator here.

use std::cmp::Ordering;

/// Which way [`first`] and [`order`] rank keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

/// The one comparator: indices by their key (`f64::total_cmp`) in
/// `direction`, equal keys by index (a total order: what a stable sort by
/// the key alone gives).
fn by(keys: &[f64], direction: Direction) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    move |&a, &b| {
        let o = keys[a].total_cmp(&keys[b]);
        let o = if direction == Direction::Descending { o.reverse() } else { o };
        o.then(a.cmp(&b))
    }
}

/// The indices of the first `k` of `keys` in `direction` (equal keys by
/// index), in that order: selected, then only they sorted (a vocabulary is
/// never sorted whole for its top few).
pub fn first(keys: &[f64], k: usize, direction: Direction) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..keys.len()).collect();
    let k = k.min(indices.len());
    if k == 0 {
        return Vec::new();
    }
    let cmp = by(keys, direction);
    if k < indices.len() {
        indices.select_nth_unstable_by(k - 1, &cmp);
        indices.truncate(k);
    }
    indices.sort_unstable_by(&cmp);
    indices
}

/// Every index of `keys` in `direction` (equal keys by index).
pub fn order(keys: &[f64], direction: Direction) -> Vec<usize> {
    first(keys, keys.len(), direction)
}

/// `items` sorted by `key` in `direction`, equal keys keeping their order
/// (a stable sort).
pub fn sorted<T>(items: Vec<T>, key: impl Fn(&T) -> f64, direction: Direction) -> Vec<T> {
    let keys: Vec<f64> = items.iter().map(key).collect();
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order(&keys, direction).into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sampling::Rng;

    /// Against the standard library's stable sort by the key (ties
    /// everywhere, signed zeros, infinities), for every k.
    #[test]
    fn first_and_sorted_equal_a_stable_sort_by_the_key() {
        let mut rng = Rng::new(9);
        for n in [0usize, 1, 2, 3, 10, 257] {
            let pool = [0.0, -0.0, 1.5, -2.0, f64::INFINITY, f64::NEG_INFINITY, 3.25];
            let keys: Vec<f64> = (0..n).map(|_| pool[(rng.next_u64() % pool.len() as u64) as usize]).collect();
            for direction in [Direction::Ascending, Direction::Descending] {
                let mut want: Vec<usize> = (0..n).collect();
                want.sort_by(|&a, &b| match direction {
                    Direction::Ascending => keys[a].total_cmp(&keys[b]),
                    Direction::Descending => keys[b].total_cmp(&keys[a]),
                });
                assert_eq!(order(&keys, direction), want, "n {n} {direction:?}");
                for k in [0, 1, 2, n / 2, n, n + 4] {
                    assert_eq!(first(&keys, k, direction), want[..k.min(n)], "n {n} k {k} {direction:?}");
                }
                let items: Vec<(usize, f64)> = keys.iter().copied().enumerate().collect();
                let got: Vec<usize> = sorted(items, |x| x.1, direction).into_iter().map(|x| x.0).collect();
                assert_eq!(got, want, "sorted, n {n} {direction:?}");
            }
        }
    }
}
