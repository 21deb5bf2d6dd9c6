//! `y = x·w + b` and the tied LM head `x·wteᵀ`: blocked SIMD products from
//! `gemm` natively and our own simd128 GEMM (`crates/simd128`) in wasm
//! (tools/gemm-bench measured the candidates on both targets: each is the
//! faster where it is used).

use super::super::ops::count_flops;
use crate::model::ValuesRef;

/// A row-major or strided operand: element (i, j) at `i·rs + j·cs`.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

/// In the browser, the simd128 crate's own (the same fields).
#[cfg(target_arch = "wasm32")]
use attnscope_simd128::Strided;

#[cfg(not(target_arch = "wasm32"))]
impl Strided<'_> {
    /// Whether every element of a `rows × cols` view is inside the slice.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// A raw pointer the column blocks of one output share: each writes only its own columns.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the blocks handed to other threads write disjoint columns of `c`,
// which outlives them (they are joined before `product` returns).
#[cfg(not(target_arch = "wasm32"))]
unsafe impl Send for OutPtr {}
#[cfg(not(target_arch = "wasm32"))]
unsafe impl Sync for OutPtr {}

/// `c[m×n] += a[m×k] · b[k×n]`, `c` row-major with row stride `rsc` ≥ `n`.
fn product(a: Strided, b: Strided, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    #[cfg(target_arch = "wasm32")]
    {
        attnscope_simd128::gemm(a, b, c, rsc, (m, k, n));
    }
    #[cfg(not(target_arch = "wasm32"))]
    product_native(a, b, c, rsc, (m, k, n));
}

/// [`product`] natively: gemm, its columns split over rayon's threads.
#[cfg(not(target_arch = "wasm32"))]
fn product_native(a: Strided, b: Strided, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    assert!(
        a.covers(m, k) && b.covers(k, n) && rsc >= n && (m == 0 || c.len() >= (m - 1) * rsc + n),
        "matmul operands are shorter than {m}×{k}×{n}"
    );
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    let out = OutPtr(c.as_mut_ptr());
    // Columns j0..j1 of the product.
    let block = |(j0, j1): (usize, usize)| {
        // The whole wrapper (Send), not its raw pointer field.
        let out = &out;
        // SAFETY: `covers` checked every index the product reads from a and
        // b; c holds m rows of stride rsc ≥ n, and this block touches
        // columns j0..j1 < n of them only.
        unsafe { sgemm_add((m, k, j1 - j0), a, b.data.as_ptr().add(j0 * b.cs), (b.rs, b.cs), out.0.add(j0), rsc) }
    };
    each_column_range((m, k, n), block);
}

/// `run` on each [`column_blocks`] range of an `m×k×n` product, on rayon's
/// threads when there are several (`threads` feature).
#[cfg(not(target_arch = "wasm32"))]
fn each_column_range((m, k, n): (usize, usize, usize), run: impl Fn((usize, usize)) + Sync + Send) {
    let ranges = column_blocks(m, k, n, threads());
    #[cfg(feature = "threads")]
    if ranges.len() > 1 {
        use rayon::prelude::*;
        ranges.into_par_iter().for_each(run);
        return;
    }
    ranges.into_iter().for_each(run);
}

/// `c[m×n] += a·b` for c row-major with row stride `rsc`, through gemm
/// (the faster natively, tools/gemm-bench).
///
/// # Safety
/// `a` (checked by the caller) and `b` (strides `rsb`, `csb`) must hold every
/// element of a `m×k` and a `k×n` view, and `c` an `m×n` view.
#[cfg(not(target_arch = "wasm32"))]
unsafe fn sgemm_add(
    (m, k, n): (usize, usize, usize),
    a: Strided,
    b: *const f32,
    (rsb, csb): (usize, usize),
    c: *mut f32,
    rsc: usize,
) {
    // Our AVX-512 kernels, which read the weights in place (gemm packs them
    // first): a few rows of `x·w`, and the tied LM head `x·wteᵀ` at any
    // number of rows (a block of `wte` stays in L2 while every row passes
    // over it; gemm transposes `wte` as it packs it: tools/gemm-bench).
    #[cfg(target_arch = "x86_64")]
    if a.cs == 1 && super::avx512::available() {
        use super::avx512::{gemm_dot_few, gemm_rows, ROWS_MAX};
        let (a, c) = ((a.data.as_ptr(), a.rs), (c, rsc));
        if csb == 1 && m <= ROWS_MAX {
            // SAFETY: the same views as gemm's below, the CPU checked.
            return unsafe { gemm_rows((m, k, n), a, (b, rsb), c) };
        }
        if rsb == 1 {
            // SAFETY: as above; b's transpose has row stride csb.
            return unsafe { gemm_dot_few((m, k, n), a, (b, csb), c) };
        }
    }
    // dst = 1·dst + 1·(lhs·rhs); gemm takes column strides first.
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        rsc as isize,
        true,
        a.data.as_ptr(),
        a.cs as isize,
        a.rs as isize,
        b,
        csb as isize,
        rsb as isize,
        1.0f32,
        1.0f32,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Threads a matmul may use: the current rayon pool's (`threads` feature).
#[cfg(all(feature = "threads", not(target_arch = "wasm32")))]
fn threads() -> usize {
    rayon::current_num_threads()
}

/// Without the `threads` feature, one.
#[cfg(not(any(feature = "threads", target_arch = "wasm32")))]
fn threads() -> usize {
    1
}

/// Splits the `n` columns into one block per thread (multiples of 64, so
/// every block but the last fills the SIMD kernels), or one block when the
/// product is too small to be worth a hand-off (under ~1 MFLOP).
#[cfg(not(target_arch = "wasm32"))]
fn column_blocks(m: usize, k: usize, n: usize, threads: usize) -> Vec<(usize, usize)> {
    let parts = if m * k * n < 500_000 { 1 } else { threads.clamp(1, n.div_ceil(64)) };
    let width = n.div_ceil(parts).next_multiple_of(64);
    (0..n).step_by(width.max(1)).map(|j0| (j0, (j0 + width).min(n))).collect()
}

/// Up to this many rows (a keystroke's new token, a KV-cache step) a native
/// matmul streams the weights once instead of packing them: packing would
/// copy every weight for a product that reads each only a few times. (The
/// browser's own GEMM, `simd128`, takes every shape.)
const STREAM_ROWS: usize = 4;

/// Whether an `m`-row product streams the weights (natively, up to [`STREAM_ROWS`]).
fn streams(m: usize) -> bool {
    !cfg!(target_arch = "wasm32") && m <= STREAM_ROWS
}

/// Values of a 16-bit operand widened at a time for a product of more than
/// a few rows (a few rows widen in registers, `attnscope_simd128`'s
/// `*_half` kernels, or natively a row at a time): 1M floats (4 MiB, from
/// L3), so that each block is a product of whole depth and hundreds of
/// columns: gemm's packing and its threads pay off, and `a` is packed once
/// per block. (At 1 MiB, GPT-2
/// small's MLP output matrix went 64 columns at a time: 16-bit weights ran
/// 1.15–1.25× f32's time in the browser; at 4 MiB, 1.0–1.1×.)
const WIDE_MANY: usize = 1 << 20;

thread_local! {
    /// The widened block of a 16-bit operand, reused by every product.
    static WIDE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `f` given a scratch of `len` floats (this thread's, reused).
fn with_wide<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    WIDE.with(|w| {
        let mut w = w.borrow_mut();
        if w.len() < len {
            w.resize(len, 0.0);
        }
        f(&mut w[..len])
    })
}

/// `y[M×N] = x[M×K] · w[K×N] + b[N]`: [`crate::engine::ops::matmul_bias`],
/// fast. `w` is f32 or 16-bit ([`crate::model::Matrix`]): for a few rows
/// 16-bit weights are widened as they are read (natively a row at a time,
/// in wasm in registers), for more a block of columns at a time into a
/// scratch the f32 product reads while it is in cache ([`product_widened`]).
pub fn matmul_bias<'w>(x: &[f32], w: impl Into<ValuesRef<'w>>, b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(m * n);
    for _ in 0..m {
        y.extend_from_slice(&b[..n]);
    }
    matmul_columns_add(x, w.into(), (m, k, n), 0..n, &mut y);
    y
}

/// Columns `cols` of [`matmul_bias`] (the products with columns `cols` of
/// `w`) for every row, written into `y` (`[M×N]`, row-major); its other
/// columns are left as they are. A product in pieces of columns reads each
/// weight once for all the rows (a piece of rows reads every weight once
/// per piece: SmolLM2's 539 MB per piece of a long text).
/// Panics if `cols` passes `n` or an operand is short.
pub fn matmul_bias_columns<'w>(
    x: &[f32],
    w: impl Into<ValuesRef<'w>>,
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    cols: std::ops::Range<usize>,
    y: &mut [f32],
) {
    assert!(cols.start <= cols.end && cols.end <= n, "columns {cols:?} of {n}");
    assert!(y.len() >= m * n, "y shorter than {m}×{n}");
    for row in y[..m * n].chunks_exact_mut(n.max(1)) {
        row[cols.clone()].copy_from_slice(&b[cols.clone()]);
    }
    matmul_columns_add(x, w.into(), (m, k, n), cols, y);
}

/// `y[.., cols] += x · w[.., cols]`: the product of [`matmul_bias_columns`].
fn matmul_columns_add(
    x: &[f32],
    w: ValuesRef<'_>,
    (m, k, n): (usize, usize, usize),
    cols: std::ops::Range<usize>,
    y: &mut [f32],
) {
    let (j0, nc) = (cols.start, cols.len());
    count_flops(2 * m * k * nc);
    if m == 0 || nc == 0 {
        return;
    }
    let w = w.slice(0..k * n);
    if streams(m) {
        // Row by row of w: y[i] += x[i][kk]·w[kk] (a vectorised axpy over the columns).
        let axpy = |kk: usize, w_row: &[f32], y: &mut [f32]| {
            for i in 0..m {
                let xv = x[i * k + kk];
                for (o, &wv) in y[i * n + j0..][..nc].iter_mut().zip(w_row) {
                    *o += xv * wv;
                }
            }
        };
        match w {
            ValuesRef::F32(w) => (0..k).for_each(|kk| axpy(kk, &w[kk * n + j0..][..nc], y)),
            ValuesRef::Half(..) => with_wide(nc, |row| {
                for kk in 0..k {
                    w.slice(kk * n + j0..kk * n + j0 + nc).widen_into(row);
                    axpy(kk, row, y);
                }
            }),
        }
        return;
    }
    let x = Strided { data: x, rs: k, cs: 1 };
    let out = &mut y[j0..];
    match w {
        ValuesRef::F32(w) => product(x, Strided { data: &w[j0..], rs: n, cs: 1 }, out, n, (m, k, nc)),
        // The browser's few rows: each weight widened in registers as it is
        // read (a keystroke's rows), or a panel at a time into L1 (a short text).
        #[cfg(target_arch = "wasm32")]
        ValuesRef::Half(format, bits) if m <= attnscope_simd128::IN_PLACE_ROWS => {
            let b = attnscope_simd128::Half16 { data: &bits[j0..], rs: n, bf16: format == crate::model::Half::Bf16 };
            if m <= STREAM_ROWS {
                attnscope_simd128::gemm_streamed_half(x, b, out, n, (m, k, nc));
            } else {
                attnscope_simd128::gemm_few_half(x, b, out, n, (m, k, nc));
            }
        }
        ValuesRef::Half(..) => {
            // Blocks of whole columns of w, the whole depth each, row by row.
            let block = (WIDE_MANY / k.max(1)).max(64) / 64 * 64;
            let widen = |c0: usize, cc: usize, wide: &mut [f32]| {
                for (kk, row) in wide.chunks_exact_mut(cc).enumerate() {
                    let at = kk * n + j0 + c0;
                    w.slice(at..at + cc).widen_into(row);
                }
                (cc, 1)
            };
            product_widened(x, widen, out, n, (m, k, nc), block);
        }
    }
}

/// `c[m×n] += a·b` for a 16-bit `b` that `widen(j0, nc, scratch)` writes
/// as f32, columns `j0..j0 + nc` of it into `scratch` (`k·nc` values),
/// returning their strides there; `block` columns at a time, each block
/// multiplied while it is in cache. Natively each thread takes a range of
/// columns ([`column_blocks`]) and widens its own blocks into its own
/// scratch (widening on one thread, then splitting each block's product
/// over two, made two threads slower than one).
fn product_widened(
    a: Strided,
    widen: impl Fn(usize, usize, &mut [f32]) -> (usize, usize) + Sync,
    c: &mut [f32],
    rsc: usize,
    (m, k, n): (usize, usize, usize),
    block: usize,
) {
    let block = block.max(1);
    #[cfg(target_arch = "wasm32")]
    with_wide(k * block.min(n), |wide| {
        for j0 in (0..n).step_by(block) {
            let nc = block.min(n - j0);
            let wide = &mut wide[..k * nc];
            let (rs, cs) = widen(j0, nc, wide);
            product(a, Strided { data: wide, rs, cs }, &mut c[j0..], rsc, (m, k, nc));
        }
    });
    #[cfg(not(target_arch = "wasm32"))]
    {
        assert!(
            a.covers(m, k) && rsc >= n && (m == 0 || c.len() >= (m - 1) * rsc + n),
            "matmul operands are shorter than {m}×{k}×{n}"
        );
        if m == 0 || k == 0 || n == 0 {
            return;
        }
        let out = OutPtr(c.as_mut_ptr());
        let run = |(j0, j1): (usize, usize)| {
            let out = &out;
            with_wide(k * block.min(j1 - j0), |wide| {
                for b0 in (j0..j1).step_by(block) {
                    let nc = block.min(j1 - b0);
                    let wide = &mut wide[..k * nc];
                    let (rs, cs) = widen(b0, nc, wide);
                    assert!(Strided { data: wide, rs, cs }.covers(k, nc), "a widened block is shorter than {k}×{nc}");
                    // SAFETY: `covers` checked a and the block; c holds m
                    // rows of stride rsc ≥ n, and this block touches
                    // columns b0..b0 + nc < n of them only (the threads'
                    // ranges are disjoint).
                    unsafe { sgemm_add((m, k, nc), a, wide.as_ptr(), (rs, cs), out.0.add(b0), rsc) }
                }
            })
        };
        each_column_range((m, k, n), run);
    }
}

/// `logits[T×V] = x[T×d] · wteᵀ` (wte `[V×d]`): [`crate::engine::ops::lm_head`], fast.
pub fn lm_head<'w>(x: &[f32], wte: impl Into<ValuesRef<'w>>, t: usize, d: usize, vocab: usize) -> Vec<f32> {
    let mut logits = vec![0.0; t * vocab];
    lm_head_columns(x, wte, (t, d, vocab), 0..vocab, &mut logits);
    logits
}

/// Columns `cols` of [`lm_head`] (vocabulary entries `cols` of `wte`) for
/// every row, written into `logits` (`[T×V]`, row-major); its other
/// columns are left as they are. An LM head in pieces of columns reads
/// each entry of the table once for all the rows (a piece of rows reads
/// the whole table once per piece: 113 MB for SmolLM2's f32 table). A
/// 16-bit table is widened a block of entries at a time.
/// Panics if `cols` passes the vocabulary or an operand is short.
pub fn lm_head_columns<'w>(
    x: &[f32],
    wte: impl Into<ValuesRef<'w>>,
    (t, d, vocab): (usize, usize, usize),
    cols: std::ops::Range<usize>,
    logits: &mut [f32],
) {
    assert!(cols.start <= cols.end && cols.end <= vocab, "columns {cols:?} of a {vocab}-entry vocabulary");
    assert!(logits.len() >= t * vocab, "logits shorter than {t}×{vocab}");
    let n = cols.len();
    count_flops(2 * t * d * n);
    if n == 0 || t == 0 {
        return;
    }
    let table = wte.into().slice(cols.start * d..cols.end * d);
    if streams(t) {
        // One pass over the table's piece: each of its rows against every x row.
        let dots = |v: usize, wte_row: &[f32], logits: &mut [f32]| {
            for i in 0..t {
                logits[i * vocab + cols.start + v] = super::dot(&x[i * d..][..d], wte_row);
            }
        };
        match table {
            ValuesRef::F32(table) => table.chunks_exact(d.max(1)).enumerate().for_each(|(v, row)| dots(v, row, logits)),
            ValuesRef::Half(..) => with_wide(d, |row| {
                for v in 0..n {
                    table.slice(v * d..(v + 1) * d).widen_into(row);
                    dots(v, row, logits);
                }
            }),
        }
        return;
    }
    // The browser's few rows against a 16-bit table: widened in registers as it is read.
    #[cfg(target_arch = "wasm32")]
    if let (ValuesRef::Half(format, bits), true) = (table, t <= STREAM_ROWS) {
        let b = attnscope_simd128::Half16 { data: bits, rs: d, bf16: format == crate::model::Half::Bf16 };
        let x = Strided { data: x, rs: d, cs: 1 };
        attnscope_simd128::gemm_dot_half(x, b, &mut logits[cols.start..], vocab, (t, d, n));
        return;
    }
    // The product adds to what is there.
    for row in logits[..t * vocab].chunks_exact_mut(vocab.max(1)) {
        row[cols.clone()].fill(0.0);
    }
    let out = &mut logits[cols.start..];
    let x = Strided { data: x, rs: d, cs: 1 };
    match table {
        ValuesRef::F32(table) => product(x, Strided { data: table, rs: 1, cs: d }, out, vocab, (t, d, n)),
        ValuesRef::Half(..) => {
            // Blocks of whole entries (columns of the product), each contiguous.
            let entries = (WIDE_MANY / d.max(1)).clamp(4, 4096).next_multiple_of(4);
            let widen = |v0: usize, nc: usize, wide: &mut [f32]| {
                table.slice(v0 * d..(v0 + nc) * d).widen_into(wide);
                (1, d)
            };
            product_widened(x, widen, out, vocab, (t, d, n), entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn column_blocks_cover_every_column_once() {
        for (m, k, n, threads) in
            [(1, 1, 1, 2), (128, 768, 50257, 2), (16, 768, 2304, 3), (1, 8, 100, 2), (64, 64, 65, 2)]
        {
            let blocks = column_blocks(m, k, n, threads);
            assert_eq!(blocks.first().map(|b| b.0), Some(0));
            assert_eq!(blocks.last().map(|b| b.1), Some(n));
            assert!(blocks.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1), "{blocks:?}");
            assert!(blocks.len() <= threads);
        }
        assert_eq!(column_blocks(1, 8, 100, 2).len(), 1, "small products stay on one thread");
    }

    #[test]
    fn empty_shapes_leave_the_bias() {
        assert_eq!(matmul_bias(&[], &[], &[1.0, 2.0], 1, 0, 2), vec![1.0, 2.0]);
        assert!(matmul_bias(&[], &[0.5; 3], &[1.0], 0, 3, 1).is_empty());
    }
}
