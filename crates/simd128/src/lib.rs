//! attnscope's matmul in the browser: a simd128 GEMM of our own (wasm32
//! only), with the row-wise helper the profile asked for (GELU four lanes at
//! a time, on a vector `exp`). `attnscope::engine::kernels` calls
//! it; its property tests against the plain loops of `attnscope::engine::ops`
//! run in wasm (tests/cpu_kernels.rs).
//!
//! Three loops, chosen by the operands' layout and the number of rows:
//! - **broadcast** (`c += a·b`, `b` row-major, as every weight matrix and A·V):
//!   a 4×8 tile of `c` in eight vector accumulators; per `k` one splat of each
//!   of the four `a` values times two vectors of `b`. Eight accumulators, two
//!   `b` vectors, a splat and a product fit the 16 vector registers V8 gives
//!   wasm on x86-64 (matrixmultiply's 8×8 tile needs 16 accumulators alone
//!   and spills). `a` is packed per depth block into 4-row panels (one
//!   pointer, immediate offsets), `b` into 8-column panels, 128 columns at a
//!   time read row by row (a run the prefetcher follows): a panel is packed
//!   once and reused by every row block while it sits in L1.
//! - **dot** (`b` stored by columns, as the tied LM head's `wteᵀ` and Q·Kᵀ):
//!   a 2×4 tile of partial-sum vectors along `k` (1×4 for a lone row),
//!   reduced at the end; no packing at all, every operand row is read in
//!   order; 64 rows of `a` at a time, a block that stays in L2 while `b`
//!   streams past it (faster than packing `b` transposed for the 4×8 tile).
//! - **streamed** (`b` row-major and at most 4 rows of `a`: a keystroke's new
//!   token, a KV-cache step): `b` read once, four of its rows at a time, each
//!   an in-order run, into `c`'s rows held in L1 (the 4×8 tile would compute
//!   three rows of zeros and read each weight row 32 bytes at a time).
//!
//! Up to 32 rows the broadcast loop reads `b`'s panels in place, in depth
//! blocks of 32 (a panel's rows fall in a few L1 sets), or packs them where
//! the row stride is a multiple of 4 KiB. A 16-bit `b` is widened in
//! registers as it is read for a few rows (streamed, dot), a panel at a time
//! into L1 for up to 32 rows, and a 4 MiB block at a time for more.
//!
//! Every multiply-add goes through one helper, `madd`: with plain simd128 a
//! multiply then an add, and in a build with the `relaxed-simd` target
//! feature `f32x4.relaxed_madd`, which V8 compiles to one fused
//! multiply-add where the CPU has FMA (rounded once instead of twice; a
//! CPU without it gets the multiply and the add). Relaxed SIMD is not in
//! every browser, so the app ships both builds and the page picks one
//! (tools/build_relaxed_simd.sh). Packing buffers are kept per thread and
//! reused, so a matmul allocates nothing.
//!
//! The app's wasm is built for size (`opt-level = "z"`), where LLVM neither
//! unrolls nor inlines iterator adaptors (a `zip` of `chunks_exact` in an
//! inner loop became a call per step, 10× slower than at `-O3`): this crate
//! is built at opt-level 3 even there (the root Cargo.toml says so), and its
//! innermost loops are plain counted loops over raw pointers behind one
//! length check, which compile to the same code at any level.
//!
//! The scalar [`exp`] is built on every target: the engine's row kernels use
//! it natively too, so there is one definition of it.

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub use wasm::*;

/// `eˣ`: Cephes' expf (range reduction by ln 2 with the round-to-nearest
/// "magic number" trick, a degree-6 polynomial, the power of two built in the
/// exponent bits), within 2 ulp of `f32::exp` for x in [−87, 88]; x is
/// clamped to that range (below it the result is ~1e−38 instead of a
/// denormal or 0, which no sum here notices). In a form the compiler
/// vectorises; the engine's row kernels use it on every target, and
/// the wasm32 `exp4` repeats its operations lane by lane.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let k = shifted - MAGIC;
    let r = x - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let k_int = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    e * f32::from_bits(((k_int + 127) << 23) as u32)
}

/// IEEE half `h` as f32, for a finite `h` (every 16-bit weight is checked
/// finite when it is read): the exponent rebiased in the bits, and a
/// subnormal renormalised by subtracting 2⁻¹⁴ from 2⁻¹⁴·(1 + m/1024), so no
/// step reads or makes an f32 denormal (slow on x86). Branch-free, so a loop
/// of it vectorises (SSE natively, simd128 in the browser).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    const REBIAS: u32 = (127 - 15) << 23;
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let magnitude = (h & 0x7fff) << 13;
    let subnormal = h & 0x7c00 == 0;
    let normal = f32::from_bits(magnitude + REBIAS);
    // For a subnormal, the bits above read as 2⁻¹⁴·(1 + m/1024) once the
    // implicit 1 is in place; minus 2⁻¹⁴ leaves m·2⁻²⁴.
    let renormalised = f32::from_bits(magnitude + REBIAS + (1 << 23)) - f32::from_bits(113 << 23);
    f32::from_bits((if subnormal { renormalised } else { normal }).to_bits() | sign)
}

/// bfloat16 `h` as f32: the high half of its bits.
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `dst[i] = f16_to_f32(src[i])` over `dst`'s length (`src` at least as
/// long). In wasm eight at a time in simd128 (LLVM left the scalar loop
/// scalar there: ~1 value per ns, a third of GPT-2 small's forward at
/// T = 16); elsewhere the scalar loop.
pub fn widen_f16(src: &[u16], dst: &mut [f32]) {
    let src = &src[..dst.len()];
    #[cfg(target_arch = "wasm32")]
    let (src, dst) = {
        let n8 = dst.len() / 8 * 8;
        wasm::widen_f16_x8(&src[..n8], &mut dst[..n8]);
        (&src[n8..], &mut dst[n8..])
    };
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16_to_f32(s);
    }
}

/// `dst[i] = bf16_to_f32(src[i])` over `dst`'s length (`src` at least as long).
pub fn widen_bf16(src: &[u16], dst: &mut [f32]) {
    let src = &src[..dst.len()];
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16_to_f32(s);
    }
}
