//! Native timings: median ms per matmul and GFLOP/s, every candidate in one run.
//! `--cold`: each product reads weights no product read lately (copies of
//! them, 600 MB in all, taken in turn), as a forward's weights come from
//! memory rather than cache; the naive loop is left out then.
use gemm_bench::{operands, run, IMPLS};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cold = args.iter().any(|a| a == "--cold");
    // `--t 16,64,128`: the rows of every shape (GPT-2 small's text lengths).
    let lengths: Vec<usize> = match args.iter().position(|a| a == "--t") {
        Some(i) => args.get(i + 1).map(|v| v.split(',').filter_map(|t| t.parse().ok()).collect()).unwrap_or_default(),
        None => vec![16, 128],
    };
    let shapes = shapes(&lengths);
    println!("{:>22} {:>14} {:>9} {:>9} {:>9} {:>9} {:>9}", "m×k×n", "", "naive", "mm", "gemm", "gemm×2", "avx512");
    for (m, k, n, t) in shapes {
        let (a, b0, mut c) = operands(m, k, n);
        let copies = if cold { (600_000_000 / (4 * k * n)).max(2) } else { 1 };
        let weights: Vec<Vec<f32>> = (0..copies).map(|_| b0.clone()).collect();
        let mut turn = 0;
        // Round robin: each repetition runs every candidate once, so a noisy
        // neighbour slows them all alike.
        let reps = if m * n * k > 100_000_000 { 5 } else { 15 };
        let mut times = vec![Vec::new(); IMPLS.len()];
        let mut sums = vec![0.0; IMPLS.len()];
        for r in 0..=reps {
            for (w, which) in IMPLS.into_iter().enumerate() {
                if matches!(which, gemm_bench::Impl::Naive) && (r > 2 || cold) {
                    continue;
                }
                let b = &weights[turn % copies];
                turn += 1;
                let s = Instant::now();
                run(which, &a, b, &mut c, (m, k, n), t);
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
                v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
            })
            .collect();
        let gf = |ms: f64| 2.0 * (m * k * n) as f64 / 1e6 / ms;
        let shape = format!("{m}×{k}×{n}{}", if t { "ᵀ" } else { "" });
        println!("{shape:>22} {:>14} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}", "ms", ms[0], ms[1], ms[2], ms[3], ms[4]);
        let g: Vec<f64> = ms.iter().map(|&ms| gf(ms)).collect();
        println!("{:>22} {:>14} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}", "", "GFLOP/s", g[0], g[1], g[2], g[3], g[4]);
        // Every candidate's sum against gemm's (the naive loop's when it ran).
        let ran = sums.iter().zip(&ms).filter(|(_, ms)| ms.is_finite());
        let spread = ran.map(|(s, _)| (s - sums[2]).abs()).fold(0.0, f64::max);
        assert!(spread <= 1e-3 * sums[2].abs().max(1.0) * (k as f64).sqrt(), "{shape}: sums differ {sums:?}");
    }
}

/// GPT-2 small's matmuls at each text length (QKV, projection, MLP up and down, LM head).
fn shapes(lengths: &[usize]) -> Vec<(usize, usize, usize, bool)> {
    let mut v = Vec::new();
    for &t in lengths {
        v.extend([
            (t, 768, 2304, false),
            (t, 768, 768, false),
            (t, 768, 3072, false),
            (t, 3072, 768, false),
            (t, 768, 50257, true),
        ]);
    }
    v
}
