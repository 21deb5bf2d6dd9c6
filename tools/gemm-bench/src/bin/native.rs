//! Native timings: median ms per matmul and GFLOP/s, every candidate in one run.
use gemm_bench::{operands, run, IMPLS};
use std::time::Instant;

fn main() {
    let shapes = shapes();
    println!("{:>22} {:>14} {:>9} {:>9} {:>9} {:>9}", "m×k×n", "", "naive", "mm", "gemm", "gemm×2");
    for (m, k, n, t) in shapes {
        let (a, b, mut c) = operands(m, k, n);
        // Round robin: each repetition runs every candidate once, so a noisy
        // neighbour slows them all alike.
        let reps = if m * n * k > 100_000_000 { 5 } else { 15 };
        let mut times = vec![Vec::new(); IMPLS.len()];
        let mut sums = vec![0.0; IMPLS.len()];
        for r in 0..=reps {
            for (w, which) in IMPLS.into_iter().enumerate() {
                if matches!(which, gemm_bench::Impl::Naive) && r > 2 {
                    continue;
                }
                let s = Instant::now();
                run(which, &a, &b, &mut c, (m, k, n), t);
                if r > 0 {
                    times[w].push(s.elapsed().as_secs_f64() * 1e3);
                }
                sums[w] = c.iter().map(|&v| v as f64).sum::<f64>();
            }
        }
        let ms: Vec<f64> = times
            .into_iter()
            .map(|mut v| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
            .collect();
        let gf = |ms: f64| 2.0 * (m * k * n) as f64 / 1e6 / ms;
        let shape = format!("{m}×{k}×{n}{}", if t { "ᵀ" } else { "" });
        println!("{shape:>22} {:>14} {:>9.3} {:>9.3} {:>9.3} {:>9.3}", "ms", ms[0], ms[1], ms[2], ms[3]);
        println!("{:>22} {:>14} {:>9.1} {:>9.1} {:>9.1} {:>9.1}", "", "GFLOP/s", gf(ms[0]), gf(ms[1]), gf(ms[2]), gf(ms[3]));
        let spread = sums.iter().map(|s| (s - sums[0]).abs()).fold(0.0, f64::max);
        assert!(spread <= 1e-3 * sums[0].abs().max(1.0) * (k as f64).sqrt(), "{shape}: sums differ {sums:?}");
    }
}

/// GPT-2 small's matmuls at T = 16 and 128 (QKV, projection, MLP up and down, LM head).
fn shapes() -> Vec<(usize, usize, usize, bool)> {
    let mut v = Vec::new();
    for t in [16, 128] {
        v.extend([(t, 768, 2304, false), (t, 768, 768, false), (t, 768, 3072, false), (t, 3072, 768, false), (t, 768, 50257, true)]);
    }
    v
}
