//! The simd128 kernels (wasm32 only): see the crate's documentation.

use core::arch::wasm32::*;

use crate::exp;
use std::cell::RefCell;

/// A row-major or strided operand: element (i, j) at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl Strided<'_> {
    /// Element (i, j).
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Rows of the broadcast kernel's tile.
const MR: usize = 4;
/// Columns of the broadcast kernel's tile (two vectors).
const NR: usize = 8;
/// Columns packed together: a run of each row of `b` long enough for the
/// hardware prefetcher (reading 16 columns, one cache line per row, down a
/// weight matrix ran at a quarter of the memory's speed).
const NC: usize = 128;
/// The distance between packed panels, in vectors past the panel itself:
/// one cache line, so the panels a row is scattered into do not all fall
/// in one L1 set (a 8 KiB panel is a multiple of the 4 KiB set period).
const PANEL_PAD: usize = 4;
/// A product whose `b` is stored by columns (`wteᵀ`, `Kᵀ`) and `a` by rows
/// takes the dot kernel this many rows of `a` at a time: a block of `a`
/// (192 KiB of GPT-2's 768-wide rows) stays in L2 while `b` streams past it
/// four columns at a time. Packing `b` transposed for the 4×8 tile was the
/// way above 64 rows, and slower: GPT-2 small's LM head (f32, headless
/// Chromium, three rounds each, one session) at T = 128 took 376–388 ms
/// packed against 263–296 in blocks of 64 (blocks of 32: 296–312, of 128:
/// 292–307), at T = 256 696–738 against 538–558; Q·Kᵀ of a head (d_head 64,
/// T = 128–512) the same or faster.
const DOT_ROWS: usize = 64;
/// Up to this many rows, `b`'s full panels are read in place, not packed:
/// packing first and computing next cannot overlap the reads of a product
/// that uses each weight only a few times. At 64 rows packing wins, with the
/// weights hot (node) and cold from memory alike (GPT-2 small's matmuls over
/// all 12 layers' weights at T = 64 in headless Chromium: 10–25 % faster
/// packed): reused 16 times, a panel read in place keeps missing L1 where the
/// row stride is a multiple of 4 KiB (`mlp_fc`'s 3072 columns). Such a
/// stride puts every row of the panel in one L1 set at any row count, so it
/// is packed whatever the rows ([`in_place`]): GPT-2 small's 12 `mlp_fc`
/// products at T = 16 took 88 ms in place and 49 packed; the other strides
/// (multiples of 1 KiB only) ran 5–40 % slower packed at T = 16.
pub const IN_PLACE_ROWS: usize = 32;

/// Whether [`gemm`] reads `b`'s full panels in place: few rows, contiguous
/// columns, and a row stride that is not a multiple of 4 KiB.
fn in_place(m: usize, b: Strided) -> bool {
    m <= IN_PLACE_ROWS && b.cs == 1 && !(b.rs * 4).is_multiple_of(4096)
}
/// Up to this many rows (a keystroke's new token, a KV-cache step), a
/// product with row-major `b` streams `b` once, four of its rows at a time
/// ([`gemm_streamed`]): the 4×8 tile would compute three rows of zeros and
/// read each weight row 32 bytes at a time.
const STREAM_ROWS: usize = 4;
/// Deepest `k` block: a 4-row panel of `a` (4 KiB) and an 8-column panel of
/// `b` (8 KiB) stay in L1 together.
const KC: usize = 256;

/// Deepest `k` block when `b`'s panels are read in place ([`in_place`]):
/// a panel's rows, one cache line each at a stride that is a multiple of
/// 1 KiB (every GPT-2 and Llama width), fall in a few L1 sets, and 256 of
/// them missed L1 on each of the row blocks' re-reads. GPT-2 small at T = 16
/// (12 layers, headless Chromium): `attn_qkv` 37 → 23 ms, `attn_proj` 13 →
/// 8, `mlp_proj` 42 → 30 with blocks of 32 (64: 24, 10, 40; 16: 24, 11, 44).
const KC_IN_PLACE: usize = 32;

/// Four floats as one vector.
#[inline(always)]
fn load4(s: &[f32; 4]) -> v128 {
    // SAFETY: `s` is 16 readable bytes; v128_load has no alignment requirement.
    unsafe { v128_load(s.as_ptr().cast()) }
}

/// One vector into four floats.
#[inline(always)]
fn store4(s: &mut [f32; 4], v: v128) {
    // SAFETY: `s` is 16 writable bytes; v128_store has no alignment requirement.
    unsafe { v128_store(s.as_mut_ptr().cast(), v) }
}

/// `s[..4]` as an array (panics if shorter, like indexing).
#[inline(always)]
fn four(s: &[f32]) -> &[f32; 4] {
    s[..4].try_into().expect("four floats")
}

#[inline(always)]
fn four_mut(s: &mut [f32]) -> &mut [f32; 4] {
    (&mut s[..4]).try_into().expect("four floats")
}

#[inline(always)]
fn lanes(v: v128) -> [f32; 4] {
    [f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v), f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)]
}

/// `c += v`, on the first `w ≤ 4` floats of `c`.
#[inline(always)]
fn add_into(c: &mut [f32], v: v128, w: usize) {
    if w >= 4 {
        let c = four_mut(c);
        store4(c, f32x4_add(load4(c), v));
    } else {
        for (o, x) in c[..w].iter_mut().zip(lanes(v)) {
            *o += x;
        }
    }
}

#[derive(Default)]
struct Scratch {
    /// `a` packed: per 4-row block, `kc` groups of 4 (rows past `m` are 0).
    a: Vec<f32>,
    /// Up to `NC` columns of `b` packed: per 8-column panel, `kc` pairs of vectors.
    b: Vec<v128>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `c[i·rsc + j] += Σ_k a(i, k)·b(k, j)` for an `m×k` by `k×n` product.
/// Panics if an operand is shorter than the shape says.
#[cfg_attr(attnscope_relaxed_simd, target_feature(enable = "relaxed-simd"))]
pub fn gemm(a: Strided, b: Strided, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * rsc + n, "c is shorter than {m}×{n} with row stride {rsc}");
    assert!(
        a.data.len() > (m - 1) * a.rs + (k - 1) * a.cs && b.data.len() > (k - 1) * b.rs + (n - 1) * b.cs,
        "matmul operands are shorter than {m}×{k}×{n}"
    );
    if a.cs == 1 && b.rs == 1 {
        let mut i0 = 0;
        while i0 < m {
            let rows = DOT_ROWS.min(m - i0);
            let a_rows = Strided { data: &a.data[i0 * a.rs..], ..a };
            gemm_dot(a_rows, b, &mut c[i0 * rsc..], rsc, (rows, k, n));
            i0 += rows;
        }
        return;
    }
    if b.cs == 1 && m <= STREAM_ROWS {
        return gemm_streamed(a, b, c, rsc, (m, k, n));
    }
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let Scratch { a: ap, b: bp } = &mut *s;
        let blocks = k.div_ceil(if in_place(m, b) { KC_IN_PLACE } else { KC });
        let kc_max = k.div_ceil(blocks);
        let row_blocks = m.div_ceil(MR);
        let mut p0 = 0;
        while p0 < k {
            let kc = kc_max.min(k - p0);
            pack_a(a, ap, p0, kc, m);
            let stride = 2 * kc + PANEL_PAD;
            let mut j0 = 0;
            if in_place(m, b) {
                // Few rows: every full 8-column panel read in place.
                while j0 + NR <= n {
                    let panel = &b.data[p0 * b.rs + j0..];
                    for rb in 0..row_blocks {
                        let acc = kernel_4x8_in_place(&ap[rb * MR * kc..][..MR * kc], panel, b.rs, kc);
                        let i0 = rb * MR;
                        for r in 0..MR.min(m - i0) {
                            let row = &mut c[(i0 + r) * rsc + j0..];
                            add_into(row, acc[2 * r], 4);
                            add_into(&mut row[4..], acc[2 * r + 1], 4);
                        }
                    }
                    j0 += NR;
                }
            }
            while j0 < n {
                let nc = NC.min(n - j0);
                pack_b(b, bp, p0, kc, j0, nc);
                let mut j = j0;
                while j < j0 + nc {
                    let w = NR.min(n - j);
                    let b_panel = &bp[(j - j0) / NR * stride..][..2 * kc];
                    add_panel_product(ap, b_panel, (m, kc), &mut c[j..], rsc, w);
                    j += NR;
                }
                j0 += nc;
            }
            p0 += kc;
        }
    });
}

/// Every 4-row block of the packed `a` (`m` rows, `kc` deep) times one
/// packed 8-column panel of `b` (`kc` pairs of vectors), added into the
/// first `w` columns of `c`'s rows.
#[inline(always)]
fn add_panel_product(ap: &[f32], panel: &[v128], (m, kc): (usize, usize), c: &mut [f32], rsc: usize, w: usize) {
    for rb in 0..m.div_ceil(MR) {
        let acc = kernel_4x8(&ap[rb * MR * kc..][..MR * kc], panel);
        let i0 = rb * MR;
        for r in 0..MR.min(m - i0) {
            let row = &mut c[(i0 + r) * rsc..];
            add_into(row, acc[2 * r], w);
            if w > 4 {
                add_into(&mut row[4..], acc[2 * r + 1], w - 4);
            }
        }
    }
}

/// [`gemm`] for at most [`STREAM_ROWS`] rows and a row-major `b`: for each
/// group of four rows of `b` (four runs the prefetcher follows), every row
/// of `c` gains `Σ_s a(i, k0 + s)·b(k0 + s, ..)`, eight columns per step.
/// Each weight is read from memory once; `c`'s rows (a few KiB) stay in L1.
#[cfg_attr(attnscope_relaxed_simd, target_feature(enable = "relaxed-simd"))]
fn gemm_streamed(a: Strided, b: Strided, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    streamed(a, |kk| &b.data[kk * b.rs..][..n], F32, c, rsc, (m, k, n));
}

/// How a row of weights reads as f32: as it is, or (`Sixteen`) 16-bit
/// values widened in registers. One streamed loop serves both.
trait RowFormat: Copy {
    type Elem: Copy;
    /// Eight values at `p` as two vectors.
    ///
    /// # Safety
    /// `p..p + 8` must be readable.
    unsafe fn load8(self, p: *const Self::Elem) -> (v128, v128);
    /// One value (the scalar tails).
    fn one(self, v: Self::Elem) -> f32;
}

#[derive(Clone, Copy)]
struct F32;

impl RowFormat for F32 {
    type Elem = f32;
    #[inline(always)]
    unsafe fn load8(self, p: *const f32) -> (v128, v128) {
        // SAFETY: the caller's contract; v128_load has no alignment requirement.
        unsafe { (v128_load(p.cast()), v128_load(p.add(4).cast())) }
    }
    #[inline(always)]
    fn one(self, v: f32) -> f32 {
        v
    }
}

/// IEEE half, or bfloat16 (`bf16`).
#[derive(Clone, Copy)]
struct Sixteen {
    bf16: bool,
}

impl RowFormat for Sixteen {
    type Elem = u16;
    #[inline(always)]
    unsafe fn load8(self, p: *const u16) -> (v128, v128) {
        // SAFETY: the caller's contract.
        unsafe { widen8(p, self.bf16) }
    }
    #[inline(always)]
    fn one(self, v: u16) -> f32 {
        widen1(v, self.bf16)
    }
}

/// The streamed loop: for each group of four rows of `b` (`row(kk)`, `n`
/// values each, read as `format`), every row of `c` gains
/// `Σ_s a(i, k0 + s)·b(k0 + s, ..)`; the last `k % 4` rows one at a time.
#[inline(always)]
fn streamed<'b, F: RowFormat + 'b>(
    a: Strided,
    row: impl Fn(usize) -> &'b [F::Elem],
    format: F,
    c: &mut [f32],
    rsc: usize,
    (m, k, n): (usize, usize, usize),
) {
    let mut k0 = 0;
    while k0 + 4 <= k {
        let bs = [row(k0), row(k0 + 1), row(k0 + 2), row(k0 + 3)];
        for i in 0..m {
            let x = [0, 1, 2, 3].map(|s| a.at(i, k0 + s));
            axpy4(&mut c[i * rsc..][..n], x, bs, format);
        }
        k0 += 4;
    }
    for kk in k0..k {
        for i in 0..m {
            axpy1(&mut c[i * rsc..][..n], a.at(i, kk), row(kk), format);
        }
    }
}

/// `y += x·b` over `y`'s length (`b` as long).
#[inline(always)]
fn axpy1<F: RowFormat>(y: &mut [f32], x: f32, b: &[F::Elem], format: F) {
    let n = y.len();
    assert!(b.len() == n);
    let s = f32x4_splat(x);
    let (py, pb) = (y.as_mut_ptr(), b.as_ptr());
    let mut j = 0;
    while j + 8 <= n {
        // SAFETY: j + 8 ≤ n and y and b hold n values (asserted above);
        // loads and stores have no alignment requirement.
        unsafe {
            let (lo, hi) = format.load8(pb.add(j));
            v128_store(py.add(j).cast(), madd(v128_load(py.add(j).cast()), s, lo));
            v128_store(py.add(j + 4).cast(), madd(v128_load(py.add(j + 4).cast()), s, hi));
        }
        j += 8;
    }
    for j in j..n {
        y[j] += x * format.one(b[j]);
    }
}

/// `y += x₀·b₀ + x₁·b₁ + x₂·b₂ + x₃·b₃` over `y`'s length (every `b_s` as long).
#[inline(always)]
fn axpy4<F: RowFormat>(y: &mut [f32], x: [f32; 4], b: [&[F::Elem]; 4], format: F) {
    let n = y.len();
    assert!(b.iter().all(|s| s.len() == n));
    let splats = x.map(|v| f32x4_splat(v));
    let py = y.as_mut_ptr();
    let pb = b.map(|s| s.as_ptr());
    let mut j = 0;
    while j + 8 <= n {
        // SAFETY: j + 8 ≤ n and y and every b_s hold n values (asserted
        // above); loads and stores have no alignment requirement.
        unsafe {
            let mut y0 = v128_load(py.add(j).cast());
            let mut y1 = v128_load(py.add(j + 4).cast());
            for (s, p) in splats.into_iter().zip(pb) {
                let (lo, hi) = format.load8(p.add(j));
                y0 = madd(y0, s, lo);
                y1 = madd(y1, s, hi);
            }
            v128_store(py.add(j).cast(), y0);
            v128_store(py.add(j + 4).cast(), y1);
        }
        j += 8;
    }
    for j in j..n {
        // The same order of operations as the vector lanes (which, fused in
        // the relaxed-SIMD build, round once per step instead of twice).
        let w = |q: usize| format.one(b[q][j]);
        y[j] = (((y[j] + x[0] * w(0)) + x[1] * w(1)) + x[2] * w(2)) + x[3] * w(3);
    }
}

/// Packs `a[.., p0..p0+kc]` as 4-row panels, `kc` groups of 4 each.
fn pack_a(a: Strided, ap: &mut Vec<f32>, p0: usize, kc: usize, m: usize) {
    let row_blocks = m.div_ceil(MR);
    ap.clear();
    ap.resize(row_blocks * MR * kc, 0.0);
    for i in 0..m {
        let panel = &mut ap[i / MR * MR * kc..][..MR * kc];
        let r = i % MR;
        let mut src = i * a.rs + p0 * a.cs;
        for kk in 0..kc {
            panel[kk * MR + r] = a.data[src];
            src += a.cs;
        }
    }
}

/// Packs columns `j0..j0+nc` of `b[p0..p0+kc, ..]` as 8-column panels of
/// `kc` vector pairs, `2·kc + PANEL_PAD` vectors apart (columns past `nc`
/// are 0), reading each row's run of columns in order.
fn pack_b(b: Strided, bp: &mut Vec<v128>, p0: usize, kc: usize, j0: usize, nc: usize) {
    let (panels, stride) = (nc.div_ceil(NR), 2 * kc + PANEL_PAD);
    bp.clear();
    bp.resize(panels * stride, f32x4_splat(0.0));
    let full = if b.cs == 1 { nc / NR } else { 0 };
    for kk in 0..kc {
        let row = p0 + kk;
        if full > 0 {
            let src = &b.data[row * b.rs + j0..][..full * NR];
            for p in 0..full {
                bp[p * stride + 2 * kk] = load4(four(&src[p * NR..]));
                bp[p * stride + 2 * kk + 1] = load4(four(&src[p * NR + 4..]));
            }
        }
        for p in full..panels {
            let mut vals = [0.0f32; NR];
            for (j, v) in vals.iter_mut().enumerate().take(nc - p * NR) {
                *v = b.at(row, j0 + p * NR + j);
            }
            bp[p * stride + 2 * kk] = load4(four(&vals));
            bp[p * stride + 2 * kk + 1] = load4(four(&vals[4..]));
        }
    }
}

/// Whether this build fuses the products' multiply-adds (`madd`): the app's
/// relaxed-SIMD build, or any build with the `relaxed-simd` target feature.
pub const RELAXED: bool = cfg!(any(attnscope_relaxed_simd, target_feature = "relaxed-simd"));

/// `acc + a·b` lane by lane: one `f32x4.relaxed_madd` in the relaxed build
/// (fused where the CPU has FMA), else a multiply and an add. Every matmul
/// loop's multiply-add goes through here. In the app's relaxed build
/// (build.rs) the target feature is on only where a function says so
/// (`cfg_attr(attnscope_relaxed_simd, target_feature(..))`): every function
/// that reaches this one and is not `#[inline(always)]` must, or the
/// intrinsic stays a function of its own, called per multiply-add
/// (tools/build_relaxed_simd.sh fails the build if one is left).
#[inline(always)]
fn madd(acc: v128, a: v128, b: v128) -> v128 {
    #[cfg(any(attnscope_relaxed_simd, target_feature = "relaxed-simd"))]
    {
        f32x4_relaxed_madd(a, b, acc)
    }
    #[cfg(not(any(attnscope_relaxed_simd, target_feature = "relaxed-simd")))]
    {
        f32x4_add(acc, f32x4_mul(a, b))
    }
}

/// The 4×8 tile `Σ_k a[k][r]·b[k]` of a packed 4-row panel (`kc` groups of
/// 4) and 8-column panel (`kc` vector pairs): accumulators `2r` and `2r + 1`
/// are row r's columns 0–3 and 4–7. One `k` per iteration: eight
/// accumulators, two `b` vectors, a splat and a product are all that is
/// live, so V8 keeps them in registers (unrolled, LLVM interleaves the steps
/// and the live values no longer fit).
#[inline(always)]
fn kernel_4x8(ap: &[f32], bp: &[v128]) -> [v128; 8] {
    let kc = bp.len() / 2;
    assert!(ap.len() >= MR * kc);
    // SAFETY: the panel holds kc pairs of vectors, 8 floats each, 8 apart.
    unsafe { kernel_4x8_strided(ap, bp.as_ptr().cast(), NR, kc) }
}

/// [`kernel_4x8`] reading `b` in place: 8 floats at `b + s·rs` for step s.
#[inline(always)]
fn kernel_4x8_in_place(ap: &[f32], b: &[f32], rs: usize, kc: usize) -> [v128; 8] {
    assert!(ap.len() >= MR * kc && kc > 0 && b.len() >= (kc - 1) * rs + NR);
    // SAFETY: step s reads b[s·rs..s·rs + 8], inside b (asserted above).
    unsafe { kernel_4x8_strided(ap, b.as_ptr(), rs, kc) }
}

/// The 4×8 kernel's loop.
///
/// # Safety
/// `ap` must hold `4·kc` floats and `b + s·rs .. b + s·rs + 8` be readable
/// floats for every step `s < kc`.
#[inline(always)]
unsafe fn kernel_4x8_strided(ap: &[f32], b: *const f32, rs: usize, kc: usize) -> [v128; 8] {
    let z = f32x4_splat(0.0);
    let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5, mut c6, mut c7) = (z, z, z, z, z, z, z, z);
    let (mut pa, mut pb) = (ap.as_ptr(), b);
    let mut left = kc;
    while left > 0 {
        // SAFETY: step `kc − left` reads ap[4s..4s+4] and 8 floats at
        // b + s·rs, readable by the caller's contract; v128_load and
        // v128_load32_splat have no alignment requirement.
        let (b0, b1, s0, s1, s2, s3) = unsafe {
            (
                v128_load(pb.cast()),
                v128_load(pb.add(4).cast()),
                v128_load32_splat(pa.cast()),
                v128_load32_splat(pa.add(1).cast()),
                v128_load32_splat(pa.add(2).cast()),
                v128_load32_splat(pa.add(3).cast()),
            )
        };
        c0 = madd(c0, s0, b0);
        c1 = madd(c1, s0, b1);
        c2 = madd(c2, s1, b0);
        c3 = madd(c3, s1, b1);
        c4 = madd(c4, s2, b0);
        c5 = madd(c5, s2, b1);
        c6 = madd(c6, s3, b0);
        c7 = madd(c7, s3, b1);
        left -= 1;
        if left > 0 {
            // SAFETY: the next step's elements, readable by the contract.
            unsafe {
                pa = pa.add(MR);
                pb = pb.add(rs);
            }
        }
    }
    [c0, c1, c2, c3, c4, c5, c6, c7]
}

/// [`gemm`] when `a`'s rows and `b`'s columns are contiguous in `k`.
#[cfg_attr(attnscope_relaxed_simd, target_feature(enable = "relaxed-simd"))]
fn gemm_dot(a: Strided, b: Strided, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    let mut j0 = 0;
    while j0 < n {
        let w = 4.min(n - j0);
        // Missing columns repeat the last one; their sums are dropped.
        let col = |q: usize| &b.data[(j0 + q.min(w - 1)) * b.cs..][..k];
        let bs = [col(0), col(1), col(2), col(3)];
        let mut i = 0;
        while i + 2 <= m {
            let sums = dot_tile([&a.data[i * a.rs..][..k], &a.data[(i + 1) * a.rs..][..k]], bs);
            add_into(&mut c[i * rsc + j0..], sums[0], w);
            add_into(&mut c[(i + 1) * rsc + j0..], sums[1], w);
            i += 2;
        }
        if i < m {
            // One row left (a keystroke's or a KV-cache step's only row).
            let sums = dot_row(&a.data[i * a.rs..][..k], bs);
            add_into(&mut c[i * rsc + j0..], sums, w);
        }
        j0 += 4;
    }
}

/// Lane q of the result: the sum of vector q's lanes.
#[inline(always)]
fn hsum4([x0, x1, x2, x3]: [v128; 4]) -> v128 {
    let t0 = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(x0, x1), i32x4_shuffle::<2, 6, 3, 7>(x0, x1));
    let t1 = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(x2, x3), i32x4_shuffle::<2, 6, 3, 7>(x2, x3));
    f32x4_add(i32x4_shuffle::<0, 1, 4, 5>(t0, t1), i32x4_shuffle::<2, 3, 6, 7>(t0, t1))
}

/// `[Σ_k a_r[k]·b_q[k] for q in 0..4]` as one vector per row r: a 2×4 tile
/// of partial-sum vectors (eight accumulators, four `b` vectors, an `a`
/// vector and a product live), reduced at the end.
#[inline(always)]
fn dot_tile(a: [&[f32]; 2], b: [&[f32]; 4]) -> [v128; 2] {
    let k = b[0].len();
    assert!(a.iter().chain(&b).all(|s| s.len() == k));
    let z = f32x4_splat(0.0);
    let (mut c00, mut c01, mut c02, mut c03) = (z, z, z, z);
    let (mut c10, mut c11, mut c12, mut c13) = (z, z, z, z);
    let (pa0, pa1) = (a[0].as_ptr(), a[1].as_ptr());
    let (pb0, pb1, pb2, pb3) = (b[0].as_ptr(), b[1].as_ptr(), b[2].as_ptr(), b[3].as_ptr());
    let mut kk = 0;
    while kk + 4 <= k {
        // SAFETY: kk + 4 ≤ k and every slice holds k floats (asserted
        // above); v128_load has no alignment requirement.
        let (b0, b1, b2, b3, x0, x1) = unsafe {
            (
                v128_load(pb0.add(kk).cast()),
                v128_load(pb1.add(kk).cast()),
                v128_load(pb2.add(kk).cast()),
                v128_load(pb3.add(kk).cast()),
                v128_load(pa0.add(kk).cast()),
                v128_load(pa1.add(kk).cast()),
            )
        };
        c00 = madd(c00, x0, b0);
        c01 = madd(c01, x0, b1);
        c02 = madd(c02, x0, b2);
        c03 = madd(c03, x0, b3);
        c10 = madd(c10, x1, b0);
        c11 = madd(c11, x1, b1);
        c12 = madd(c12, x1, b2);
        c13 = madd(c13, x1, b3);
        kk += 4;
    }
    let mut out = [hsum4([c00, c01, c02, c03]), hsum4([c10, c11, c12, c13])];
    if kk < k {
        for (o, a) in out.iter_mut().zip(a) {
            let mut tail = [0.0f32; 4];
            for (t, bq) in tail.iter_mut().zip(b) {
                *t = a[kk..].iter().zip(&bq[kk..]).map(|(x, y)| x * y).sum();
            }
            *o = f32x4_add(*o, load4(&tail));
        }
    }
    out
}

/// [`dot_tile`] for one row: `[Σ_k a[k]·b_q[k] for q in 0..4]`, four
/// partial-sum vectors reduced at the end.
#[inline(always)]
fn dot_row(a: &[f32], b: [&[f32]; 4]) -> v128 {
    let k = a.len();
    assert!(b.iter().all(|s| s.len() == k));
    let z = f32x4_splat(0.0);
    let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
    let pa = a.as_ptr();
    let (pb0, pb1, pb2, pb3) = (b[0].as_ptr(), b[1].as_ptr(), b[2].as_ptr(), b[3].as_ptr());
    let mut kk = 0;
    while kk + 4 <= k {
        // SAFETY: kk + 4 ≤ k and every slice holds k floats (asserted
        // above); v128_load has no alignment requirement.
        unsafe {
            let x = v128_load(pa.add(kk).cast());
            c0 = madd(c0, x, v128_load(pb0.add(kk).cast()));
            c1 = madd(c1, x, v128_load(pb1.add(kk).cast()));
            c2 = madd(c2, x, v128_load(pb2.add(kk).cast()));
            c3 = madd(c3, x, v128_load(pb3.add(kk).cast()));
        }
        kk += 4;
    }
    let mut out = hsum4([c0, c1, c2, c3]);
    if kk < k {
        let mut tail = [0.0f32; 4];
        for (t, bq) in tail.iter_mut().zip(b) {
            *t = a[kk..].iter().zip(&bq[kk..]).map(|(x, y)| x * y).sum();
        }
        out = f32x4_add(out, load4(&tail));
    }
    out
}

/// [`exp`] four lanes at a time: its very operations (same constants and
/// order, no fused multiply-add), so each lane equals it bit for bit.
#[inline(always)]
pub fn exp4(x: v128) -> v128 {
    let magic = f32x4_splat(12_582_912.0);
    let x = f32x4_min(f32x4_max(x, f32x4_splat(-87.0)), f32x4_splat(88.0));
    let shifted = f32x4_add(f32x4_mul(x, f32x4_splat(std::f32::consts::LOG2_E)), magic);
    let k = f32x4_sub(shifted, magic);
    let r = f32x4_sub(f32x4_sub(x, f32x4_mul(k, f32x4_splat(0.693_359_4))), f32x4_mul(k, f32x4_splat(-2.121_944_4e-4)));
    let mut p = f32x4_splat(1.987_569_1e-4);
    for coef in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = f32x4_add(f32x4_mul(p, r), f32x4_splat(coef));
    }
    let e = f32x4_add(f32x4_add(f32x4_mul(f32x4_mul(p, r), r), r), f32x4_splat(1.0));
    let k_int = i32x4_sub(shifted, magic);
    let scale = i32x4_shl(i32x4_add(k_int, i32x4_splat(127)), 23);
    f32x4_mul(e, scale)
}

/// GELU's tanh form, `x / (1 + e^(−2u))` with u = √(2/π)(x + 0.044715x³),
/// four lanes at a time, with [`exp4`]: attnscope's scalar GELU's
/// operations in its order, so they agree bit for bit.
pub fn gelu_tanh(x: &mut [f32]) {
    let c = f32x4_splat(0.797_884_6);
    let n4 = x.len() / 4 * 4;
    let mut i = 0;
    while i < n4 {
        let v = four_mut(&mut x[i..]);
        let x = load4(v);
        let cube = f32x4_mul(f32x4_mul(f32x4_mul(f32x4_splat(0.044_715), x), x), x);
        let u = f32x4_mul(c, f32x4_add(x, cube));
        let e = exp4(f32x4_mul(f32x4_splat(-2.0), u));
        store4(v, f32x4_div(x, f32x4_add(f32x4_splat(1.0), e)));
        i += 4;
    }
    for v in &mut x[n4..] {
        let u = 0.797_884_6 * (*v + 0.044_715 * *v * *v * *v);
        *v /= 1.0 + exp(-2.0 * u);
    }
}

/// Eight 16-bit values at `p` as two f32 vectors, widened in registers:
/// each value moved to the high half of its lane, which is all bfloat16
/// needs. For IEEE half, an arithmetic shift right by 3 then
/// moves the exponent and mantissa to f32's places (the sign stays at the
/// top; the three bits it was copied into are cleared), which reads as the
/// value times 2⁻¹¹², and a multiply by 2¹¹² makes it exact (a subnormal
/// half becomes an f32 denormal there, which the multiply makes normal
/// again; some x86 cores take a slow path on a denormal operand, but a
/// weight that small is rare). Finite values only. Five operations per
/// four values: the rebias-and-select form of [`crate::f16_to_f32`] took
/// twelve and left a keystroke on f16 weights at 2× f32's time.
///
/// # Safety
/// `p..p + 8` must be readable.
#[inline(always)]
unsafe fn widen8(p: *const u16, bf16: bool) -> (v128, v128) {
    // SAFETY: the caller's contract; v128_load has no alignment requirement.
    let h = unsafe { v128_load(p.cast()) };
    // Each value in the high half of its lane (a byte shuffle against zeros
    // instead ran 1.4× slower in V8 than this widen and shift).
    let lo = i32x4_shl(u32x4_extend_low_u16x8(h), 16);
    let hi = i32x4_shl(u32x4_extend_high_u16x8(h), 16);
    if bf16 {
        return (lo, hi);
    }
    let two_pow_112 = f32x4_splat(f32::from_bits((127 + 112) << 23));
    let keep = u32x4_splat(0x8fff_ffff);
    let half = |x: v128| f32x4_mul(v128_and(i32x4_shr(x, 3), keep), two_pow_112);
    (half(lo), half(hi))
}

/// One 16-bit value as f32 (the scalar tails).
#[inline(always)]
fn widen1(h: u16, bf16: bool) -> f32 {
    if bf16 {
        crate::bf16_to_f32(h)
    } else {
        crate::f16_to_f32(h)
    }
}

/// [`crate::widen_f16`] eight values at a time (`src` and `dst` of the same
/// length, a multiple of 8).
pub(crate) fn widen_f16_x8(src: &[u16], dst: &mut [f32]) {
    assert!(src.len() == dst.len() && src.len().is_multiple_of(8));
    let (ps, pd) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i < src.len() {
        // SAFETY: i + 8 ≤ len for both slices (asserted: len is a multiple
        // of 8); v128_store has no alignment requirement.
        unsafe {
            let (lo, hi) = widen8(ps.add(i), false);
            v128_store(pd.add(i).cast(), lo);
            v128_store(pd.add(i + 4).cast(), hi);
        }
        i += 8;
    }
}

/// A 16-bit weight matrix in the browser: row `r` at `data[r·rs..]`, IEEE
/// half or (`bf16`) bfloat16, every value finite.
#[derive(Clone, Copy)]
pub struct Half16<'a> {
    pub data: &'a [u16],
    pub rs: usize,
    pub bf16: bool,
}

/// `c[i·rsc + j] += Σ_k a(i, k)·b(k, j)` for at most 4 rows of `a` and a
/// 16-bit row-major `b` (a keystroke's new token against a 16-bit weight
/// matrix): [`gemm_streamed`] with each weight widened in registers as it
/// is read, so the product reads 2 bytes a weight and writes nothing else
/// (widening into a scratch first, then reading it, made a keystroke 1.6–1.9×
/// slower than with f32 weights). Panics if an operand is short or `m > 4`.
#[cfg_attr(attnscope_relaxed_simd, target_feature(enable = "relaxed-simd"))]
pub fn gemm_streamed_half(a: Strided, b: Half16, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    assert!(m <= STREAM_ROWS, "{m} rows: the streamed product takes at most {STREAM_ROWS}");
    assert!(c.len() >= (m - 1) * rsc + n, "c is shorter than {m}×{n} with row stride {rsc}");
    assert!(
        a.data.len() > (m - 1) * a.rs + (k - 1) * a.cs && b.data.len() >= (k - 1) * b.rs + n,
        "matmul operands are shorter than {m}×{k}×{n}"
    );
    streamed(a, |kk| &b.data[kk * b.rs..][..n], Sixteen { bf16: b.bf16 }, c, rsc, (m, k, n));
}

/// `c[i·rsc + j] += Σ_k a(i, k)·b(k, j)` for a few rows of `a` (up to
/// [`IN_PLACE_ROWS`]; any count works) and a 16-bit row-major `b`: the 4×8
/// kernel on each 8-column panel of `b`, `KC_IN_PLACE` rows deep, widened
/// into a 1 KiB panel in L1 once and used by every row block. Widening a
/// 4 MiB block of `b` first and then multiplying it (what more rows do) made
/// an f16 product of 16 rows ~1.2× its f32 time. Panics if an operand is short.
#[cfg_attr(attnscope_relaxed_simd, target_feature(enable = "relaxed-simd"))]
pub fn gemm_few_half(a: Strided, b: Half16, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * rsc + n, "c is shorter than {m}×{n} with row stride {rsc}");
    assert!(
        a.data.len() > (m - 1) * a.rs + (k - 1) * a.cs && b.data.len() >= (k - 1) * b.rs + n,
        "matmul operands are shorter than {m}×{k}×{n}"
    );
    let format = Sixteen { bf16: b.bf16 };
    let mut panel = [f32x4_splat(0.0); 2 * KC_IN_PLACE];
    SCRATCH.with(|s| {
        let ap = &mut s.borrow_mut().a;
        let blocks = k.div_ceil(KC_IN_PLACE);
        let kc_max = k.div_ceil(blocks);
        let mut p0 = 0;
        while p0 < k {
            let kc = kc_max.min(k - p0);
            pack_a(a, ap, p0, kc, m);
            let mut j = 0;
            while j < n {
                let w = NR.min(n - j);
                for kk in 0..kc {
                    let row = &b.data[(p0 + kk) * b.rs + j..][..w];
                    let (lo, hi) = if w == NR {
                        // SAFETY: `row` holds the 8 values read.
                        unsafe { format.load8(row.as_ptr()) }
                    } else {
                        let mut vals = [0.0f32; NR];
                        for (v, &h) in vals.iter_mut().zip(row) {
                            *v = format.one(h);
                        }
                        (load4(four(&vals)), load4(four(&vals[4..])))
                    };
                    panel[2 * kk] = lo;
                    panel[2 * kk + 1] = hi;
                }
                add_panel_product(ap, &panel[..2 * kc], (m, kc), &mut c[j..], rsc, w);
                j += NR;
            }
            p0 += kc;
        }
    });
}

/// `c[i·rsc + j] = Σ_k a(i, k)·b(j, k)` for rows of `a` contiguous in `k`
/// and a 16-bit `b` whose rows are the product's columns (the tied LM
/// head's table: `x·wteᵀ`), widened as it is read, one row of `a` at a time
/// (a keystroke's few rows). Overwrites the `n` columns.
pub fn gemm_dot_half(a: Strided, b: Half16, c: &mut [f32], rsc: usize, (m, k, n): (usize, usize, usize)) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.cs == 1 && a.data.len() >= (m - 1) * a.rs + k, "a's rows are shorter than {k}");
    assert!(b.data.len() >= (n - 1) * b.rs + k && c.len() >= (m - 1) * rsc + n, "operands shorter than {m}×{k}×{n}");
    for i in 0..m {
        let row = &a.data[i * a.rs..][..k];
        let mut j0 = 0;
        while j0 < n {
            let w = 4.min(n - j0);
            // Missing columns repeat the last one; their sums are dropped.
            let col = |q: usize| &b.data[(j0 + q.min(w - 1)) * b.rs..][..k];
            let sums = lanes(dot_row_half(row, [col(0), col(1), col(2), col(3)], b.bf16));
            c[i * rsc + j0..][..w].copy_from_slice(&sums[..w]);
            j0 += 4;
        }
    }
}

/// [`dot_row`] against 16-bit rows, widened as they are read.
#[inline(always)]
fn dot_row_half(a: &[f32], b: [&[u16]; 4], bf16: bool) -> v128 {
    let k = a.len();
    assert!(b.iter().all(|s| s.len() == k));
    let z = f32x4_splat(0.0);
    let mut acc = [z; 4];
    let pa = a.as_ptr();
    let pb = b.map(|s| s.as_ptr());
    let mut kk = 0;
    while kk + 8 <= k {
        // SAFETY: kk + 8 ≤ k and every slice holds k values (asserted
        // above); v128_load has no alignment requirement.
        unsafe {
            let (x0, x1) = (v128_load(pa.add(kk).cast()), v128_load(pa.add(kk + 4).cast()));
            for (c, p) in acc.iter_mut().zip(pb) {
                let (lo, hi) = widen8(p.add(kk), bf16);
                *c = f32x4_add(*c, f32x4_add(f32x4_mul(x0, lo), f32x4_mul(x1, hi)));
            }
        }
        kk += 8;
    }
    let mut out = hsum4(acc);
    if kk < k {
        let mut tail = [0.0f32; 4];
        for (t, bq) in tail.iter_mut().zip(b) {
            *t = a[kk..].iter().zip(&bq[kk..]).map(|(x, &y)| x * widen1(y, bf16)).sum();
        }
        out = f32x4_add(out, load4(&tail));
    }
    out
}
