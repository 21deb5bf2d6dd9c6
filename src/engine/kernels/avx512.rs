//! Native x86-64 products of a few rows with AVX-512 F that read the weights
//! where they lie, with no packing: `c += a·b` for the two layouts the
//! forward has. The `gemm` crate packs every weight it reads into panels
//! first; for a short text (5–48 rows) each weight is then read only a few
//! times, and the packing's copy is a fifth of the product's time while the
//! weights stream from memory. Above, gemm's packed panels win (its kernel
//! reads `a` from L1; these read it from L2).
//!
//! - [`gemm_rows`]: `b` row-major (`[k×n]`, unit column stride), the block
//!   matmuls `x·w`. A tile is up to [`MR`] rows × 64 columns: 24
//!   accumulators, four `b` vectors and a broadcast of `a`. The depth goes
//!   [`KC`] at a time over a block of [`JB`] columns, whose `b` rows
//!   (256 KiB) stay in L2 while every row tile reads them; the first row
//!   tile of each panel prefetches the panel read next.
//! - [`gemm_dot_few`]: `b` given as its transpose, row-major (`bᵀ` `[n×k]`,
//!   the tied LM head's `wte`, and attention's keys), 32 rows of `a` at a
//!   time: they are transposed into a scratch of one or two vectors a
//!   depth step, then `cᵀ = bᵀ·aᵀ`, broadcasting `bᵀ`'s elements: 24
//!   accumulators of 24 rows of `bᵀ` (12 for two vectors). `bᵀ` goes a
//!   block at a time that stays in L2 while every group of rows passes
//!   over it, so it is read from memory once.
//!
//! `a` is read in place (unit column stride). The plain loops of
//! `engine::ops` are the reference (the tests below, and through
//! `kernels::matmul_bias` and `kernels::lm_head` `tests/cpu_kernels.rs`).
//! Figures: tools/gemm-bench/README.md.

use std::arch::x86_64::*;

/// Rows of a [`gemm_rows`] tile.
const MR: usize = 6;
/// Columns of a [`gemm_rows`] tile: four vectors of 16.
const NR: usize = 64;
/// Depth of a [`gemm_rows`] block.
const KC: usize = 256;
/// Columns of a [`gemm_rows`] block.
const JB: usize = 256;
/// Most rows of `a` [`gemm_rows`] is used for (above, gemm's packing pays off:
/// at 64 rows it was 1.2× gemm's time, at 48 0.8×).
pub const ROWS_MAX: usize = 48;
/// Rows of `a` [`gemm_dot_few`] takes at a time (two vectors of 16).
pub const DOT_ROWS_MAX: usize = 32;

/// Whether this CPU runs these kernels (AVX-512 F; std caches the check).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// The lanes of a 16-lane vector that `cols` columns fill (none when ≤ 0).
#[inline(always)]
fn lanes(cols: isize) -> __mmask16 {
    match cols {
        16.. => 0xffff,
        ..=0 => 0,
        _ => ((1u32 << cols) - 1) as __mmask16,
    }
}

/// `c[m×n] += a[m×k] · b[k×n]`: `a` row stride `rsa`, `b` row stride `rsb`,
/// `c` row stride `rsc`, each with unit column stride.
///
/// # Safety
/// The CPU has AVX-512 F ([`available`]); `a`, `b` and `c` hold every
/// element of those views.
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm_rows(
    (m, k, n): (usize, usize, usize),
    (a, rsa): (*const f32, usize),
    (b, rsb): (*const f32, usize),
    (c, rsc): (*mut f32, usize),
) {
    for jb in (0..n).step_by(JB) {
        let jb_end = (jb + JB).min(n);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            for j0 in (jb..jb_end).step_by(NR) {
                let cols = (jb_end - j0).min(NR) as isize;
                let masks = [0, 1, 2, 3].map(|q| lanes(cols - 16 * q));
                // Where the panel read next lies from this one, in floats: the next panel of
                // these rows, else the block's first panel a depth block on, else the next
                // block's first panel at the top. (Only prefetched: never read through.)
                let ahead = if j0 + NR < jb_end {
                    NR as isize
                } else if k0 + KC < k {
                    (KC * rsb) as isize - (j0 - jb) as isize
                } else {
                    (jb_end - j0) as isize - (k0 * rsb) as isize
                };
                // SAFETY (this and the row tiles' pointers): inside the views the caller vouched for.
                let bp = unsafe { b.add(k0 * rsb + j0) };
                for i0 in (0..m).step_by(MR) {
                    let (ap, cp) = unsafe { (a.add(i0 * rsa + k0), c.add(i0 * rsc + j0)) };
                    let tile = RowsTile { kc, rsa, rsb, rsc, masks, prefetch: (i0 == 0).then_some(ahead) };
                    // SAFETY: the tile's rows, depth and masked columns lie inside the views.
                    unsafe {
                        match (m - i0).min(MR) {
                            6 => tile_rows::<6>(ap, bp, cp, &tile),
                            5 => tile_rows::<5>(ap, bp, cp, &tile),
                            4 => tile_rows::<4>(ap, bp, cp, &tile),
                            3 => tile_rows::<3>(ap, bp, cp, &tile),
                            2 => tile_rows::<2>(ap, bp, cp, &tile),
                            _ => tile_rows::<1>(ap, bp, cp, &tile),
                        }
                    }
                }
            }
        }
    }
}

/// One tile of [`gemm_rows`]: its depth, strides, the lanes of its four
/// column vectors inside the product, and (for the tile that first reads
/// the panel) where to prefetch from each `b` row.
struct RowsTile {
    kc: usize,
    rsa: usize,
    rsb: usize,
    rsc: usize,
    masks: [__mmask16; 4],
    prefetch: Option<isize>,
}

/// `c[R×64] += a[R×kc] · b[kc×64]`, the lanes past the product's columns masked off.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_rows<const R: usize>(a: *const f32, b: *const f32, c: *mut f32, t: &RowsTile) {
    let &RowsTile { kc, rsa, rsb, rsc, masks, prefetch } = t;
    // Masked lanes are never read or written, so their addresses (past the
    // last column) are formed with wrapping arithmetic only.
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        for (q, v) in row.iter_mut().enumerate() {
            *v = unsafe { _mm512_maskz_loadu_ps(masks[q], c.wrapping_add(r * rsc + 16 * q)) };
        }
    }
    let full = masks[3] == 0xffff;
    for kk in 0..kc {
        let br = b.wrapping_add(kk * rsb);
        if let Some(ahead) = prefetch {
            let next = br.wrapping_offset(ahead) as *const i8;
            for line in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(64 * line));
            }
        }
        // SAFETY: row kk of the tile's b, its masked-off lanes not read.
        let bv = unsafe {
            if full {
                [0, 1, 2, 3].map(|q| _mm512_loadu_ps(br.add(16 * q)))
            } else {
                [0, 1, 2, 3].map(|q| _mm512_maskz_loadu_ps(masks[q], br.wrapping_add(16 * q)))
            }
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: a's row r, column kk < kc.
            let x = _mm512_set1_ps(unsafe { *a.add(r * rsa + kk) });
            for q in 0..4 {
                row[q] = _mm512_fmadd_ps(x, bv[q], row[q]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, v) in row.iter().enumerate() {
            unsafe { _mm512_mask_storeu_ps(c.wrapping_add(r * rsc + 16 * q), masks[q], *v) };
        }
    }
}

/// `c[m×n] += a[m×k] · b[k×n]` for `b` given as `bᵀ` (`[n×k]`, row stride
/// `rsbt`): `a` row stride `rsa`, `c` row stride `rsc`, unit column
/// strides. `a` goes [`DOT_ROWS_MAX`] rows at a time, each group transposed
/// once; `bᵀ` goes a block of [`DOT_BLOCK_BYTES`] at a time, which stays in
/// L2 while every group passes over it, so `bᵀ` is read from memory once
/// however many rows `a` has (a pass of each group over all of it read
/// GPT-2's 154 MB table four times for 128 rows). Each element is one sum
/// over the depth in one order, whatever the rows and columns around it.
///
/// # Safety
/// The CPU has AVX-512 F ([`available`]); `a`, `bt` and `c` hold every
/// element of those views.
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm_dot_few(
    (m, k, n): (usize, usize, usize),
    (a, rsa): (*const f32, usize),
    (bt, rsbt): (*const f32, usize),
    (c, rsc): (*mut f32, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // Each group of rows: its first row, its tile and its rows transposed.
    // SAFETY (here and below): rows r0..r0 + rows of a and c, and rows
    // v0..v0 + cols of bᵀ with columns v0.. of c, inside the caller's views.
    let groups: Vec<(usize, DotTile, Vec<f32>)> = (0..m)
        .step_by(DOT_ROWS_MAX)
        .map(|r0| {
            let rows = DOT_ROWS_MAX.min(m - r0);
            (r0, DotTile { m: rows, k, rsbt, rsc }, unsafe { transposed(a.add(r0 * rsa), rsa, rows, k) })
        })
        .collect();
    // A whole number of 24-row tiles (12 for two vectors of rows): a
    // block's ragged end goes a row of `bᵀ` at a time.
    let block = (DOT_BLOCK_BYTES / (4 * k).max(1)).max(24) / 24 * 24;
    for v0 in (0..n).step_by(block) {
        let cols = block.min(n - v0);
        for (r0, tile, at) in &groups {
            let (bt, c) = unsafe { (bt.add(v0 * rsbt), c.add(r0 * rsc + v0)) };
            unsafe {
                match row_vectors(tile.m) {
                    1 => dot_few::<1, 24>(at, cols, bt, c, tile),
                    _ => dot_few::<2, 12>(at, cols, bt, c, tile),
                }
            }
        }
    }
}

/// Vectors of 16 that hold a depth step of `rows` ≤ [`DOT_ROWS_MAX`]
/// transposed rows: the `Q` of [`dot_few`] and the width of [`transposed`].
fn row_vectors(rows: usize) -> usize {
    if rows <= 16 {
        1
    } else {
        2
    }
}

/// Bytes of `bᵀ` [`gemm_dot_few`] takes at a time: with the transposed rows
/// of `a` (k × 32 values a group; 393 KB for GPT-2's 128 × 768) they stay in
/// a 1 MiB L2.
const DOT_BLOCK_BYTES: usize = 384 << 10;

/// `rows` ≤ [`DOT_ROWS_MAX`] rows of `a` (row stride `rsa`), transposed:
/// each depth step's rows in [`row_vectors`] vectors of 16 (zero past the rows).
///
/// # Safety
/// `a` holds `rows` rows of `k` values at stride `rsa`.
unsafe fn transposed(a: *const f32, rsa: usize, rows: usize, k: usize) -> Vec<f32> {
    let width = 16 * row_vectors(rows);
    let mut at = vec![0.0f32; k * width];
    for i in 0..rows {
        for kk in 0..k {
            // SAFETY: a's row i < rows, column kk < k.
            at[kk * width + i] = unsafe { *a.add(i * rsa + kk) };
        }
    }
    at
}

/// [`gemm_dot_few`] for one group of `a`'s rows, transposed in `at` (`Q`
/// vectors a depth step), against `n` rows of `bᵀ`, `V` of them a tile.
#[target_feature(enable = "avx512f")]
unsafe fn dot_few<const Q: usize, const V: usize>(at: &[f32], n: usize, bt: *const f32, c: *mut f32, tile: &DotTile) {
    let mut v0 = 0;
    // SAFETY: rows v0.. of bt and columns v0.. of c, inside the views.
    unsafe {
        while v0 + V <= n {
            tile_dot::<Q, V>(at, bt.add(v0 * tile.rsbt), c.add(v0), tile);
            v0 += V;
        }
        while v0 < n {
            tile_dot::<Q, 1>(at, bt.add(v0 * tile.rsbt), c.add(v0), tile);
            v0 += 1;
        }
    }
}

/// One tile of [`dot_few`]: rows of `a` and depth, and the strides of `bᵀ` and `c`.
struct DotTile {
    m: usize,
    k: usize,
    rsbt: usize,
    rsc: usize,
}

/// `c[i][v] += Σ_kk at[kk][i] · bt[v][kk]` for `V` rows of `bᵀ`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_dot<const Q: usize, const V: usize>(at: &[f32], bt: *const f32, c: *mut f32, t: &DotTile) {
    let &DotTile { m, k, rsbt, rsc } = t;
    let mut acc = [[_mm512_setzero_ps(); Q]; V];
    for (kk, step) in at.chunks_exact(16 * Q).take(k).enumerate() {
        let xs: [__m512; Q] = std::array::from_fn(|q| {
            // SAFETY: the step holds Q vectors.
            unsafe { _mm512_loadu_ps(step.as_ptr().add(16 * q)) }
        });
        for (v, row) in acc.iter_mut().enumerate() {
            // SAFETY: bᵀ's row v, column kk < k.
            let w = _mm512_set1_ps(unsafe { *bt.add(v * rsbt + kk) });
            for q in 0..Q {
                row[q] = _mm512_fmadd_ps(w, xs[q], row[q]);
            }
        }
    }
    let mut lanes = [0.0f32; 16];
    for (v, row) in acc.iter().enumerate() {
        for (q, sums) in row.iter().enumerate() {
            // SAFETY: lanes holds 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *sums) };
            for (l, s) in lanes.iter().enumerate().take(m.saturating_sub(16 * q)) {
                // SAFETY: c's row 16·q + l < m, column v.
                unsafe { *c.add((16 * q + l) * rsc + v) += s };
            }
        }
    }
}

/// `o[r] += Σ_j w[r][j] · v[j]` for `m` rows over `t` keys of `dv` columns
/// (attention's A·V): `w` row stride `rsw`, `v` row stride `rsv`, `o` row
/// stride `rso`. A zero weight (a key the mask forbids) is skipped, so a
/// forbidden key's values never reach the row, whatever they are. Each
/// row's 64 columns at a time are summed in registers.
///
/// # Safety
/// The CPU has AVX-512 F ([`available`]); `w`, `v` and `o` hold every
/// element of those views.
#[target_feature(enable = "avx512f")]
pub unsafe fn weighted_rows(
    (m, t, dv): (usize, usize, usize),
    (w, rsw): (*const f32, usize),
    (v, rsv): (*const f32, usize),
    (o, rso): (*mut f32, usize),
) {
    for r in 0..m {
        for c0 in (0..dv).step_by(NR) {
            let masks = [0, 1, 2, 3].map(|q| lanes((dv - c0) as isize - 16 * q));
            let out = o.wrapping_add(r * rso + c0);
            // SAFETY: masked lanes lie past the row's dv columns and are neither read nor written.
            let mut acc = [0, 1, 2, 3].map(|q| unsafe { _mm512_maskz_loadu_ps(masks[q], out.wrapping_add(16 * q)) });
            for j in 0..t {
                // SAFETY: weight (r, j) of the view.
                let wj = unsafe { *w.add(r * rsw + j) };
                if wj != 0.0 {
                    let b = _mm512_set1_ps(wj);
                    let vj = v.wrapping_add(j * rsv + c0);
                    for q in 0..4 {
                        // SAFETY: value row j's columns c0 + 16q.., masked to the row.
                        let x = unsafe { _mm512_maskz_loadu_ps(masks[q], vj.wrapping_add(16 * q)) };
                        acc[q] = _mm512_fmadd_ps(b, x, acc[q]);
                    }
                }
            }
            for q in 0..4 {
                unsafe { _mm512_mask_storeu_ps(out.wrapping_add(16 * q), masks[q], acc[q]) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(seed: &mut u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// `c += a·b`, all row-major with padded row strides (the kernels must
    /// honour them), against the plain loop; `dot`: `b` given transposed.
    fn check(seed: &mut u64, (m, k, n): (usize, usize, usize), dot: bool) {
        let (rsa, rsb, rsc) = (k + 3, n + 5, n + 7);
        let (a, b, c0) = (values(seed, m * rsa), values(seed, k * rsb), values(seed, m * rsc));
        let mut want = c0.clone();
        let mut scale = vec![0.0f32; m * rsc];
        for i in 0..m {
            for j in 0..n {
                for kk in 0..k {
                    want[i * rsc + j] += a[i * rsa + kk] * b[kk * rsb + j];
                    scale[i * rsc + j] += (a[i * rsa + kk] * b[kk * rsb + j]).abs();
                }
            }
        }
        let mut got = c0.clone();
        let rsbt = k + 1;
        let mut bt = vec![f32::NAN; n * rsbt];
        for kk in 0..k {
            for j in 0..n {
                bt[j * rsbt + kk] = b[kk * rsb + j];
            }
        }
        // SAFETY: AVX-512 F checked by the caller; every view lies in its vector.
        unsafe {
            if dot {
                gemm_dot_few((m, k, n), (a.as_ptr(), rsa), (bt.as_ptr(), rsbt), (got.as_mut_ptr(), rsc));
            } else {
                gemm_rows((m, k, n), (a.as_ptr(), rsa), (b.as_ptr(), rsb), (got.as_mut_ptr(), rsc));
            }
        }
        for (i, ((g, w), s)) in got.iter().zip(&want).zip(&scale).enumerate() {
            let in_view = i % rsc < n;
            if in_view {
                assert!((g - w).abs() <= 1e-5 * (s + 1.0), "{m}×{k}×{n} dot {dot}: [{i}] {g} vs {w}");
            } else {
                assert_eq!(g.to_bits(), c0[i].to_bits(), "{m}×{k}×{n} dot {dot}: [{i}] outside the view was written");
            }
        }
    }

    #[test]
    fn the_kernels_equal_the_plain_loop_on_ragged_shapes() {
        if !available() {
            eprintln!("no AVX-512 F on this CPU: the kernels are never called here (gemm is)");
            return;
        }
        let mut seed = 5;
        // Every row-tile and column-mask remainder, depth and column blocks with ragged ends.
        for (m, k, n) in
            [(1, 1, 1), (5, 7, 9), (6, 256, 64), (7, 257, 65), (13, 513, 257), (48, 300, 300), (11, 600, 700)]
        {
            check(&mut seed, (m, k, n), false);
        }
        // One and two vectors of rows, full and ragged tiles of bᵀ's rows; past 32 rows: 32 at a time, a ragged last
        // pass; several blocks of bᵀ (the last ragged) under one group of rows and under several.
        for (m, k, n) in [
            (1, 1, 1),
            (5, 17, 23),
            (16, 64, 48),
            (17, 33, 25),
            (32, 100, 13),
            (20, 1000, 300),
            (70, 65, 30),
            (40, 2000, 150),
            (33, 4096, 50),
        ] {
            check(&mut seed, (m, k, n), true);
        }
    }
}
