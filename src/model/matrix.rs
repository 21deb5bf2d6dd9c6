//! `Matrix`: a weight matrix or table as the checkpoint stored it — f32, or
//! 16-bit (IEEE half or bfloat16) kept 16-bit. A 16-bit checkpoint (SmolLM2's
//! bf16, an f16 GPT-2) takes half the wasm memory it took widened, the GPU
//! upload sends its values as they are, and the CPU kernels widen a block at
//! a time as they read (`engine::kernels`). Vectors (norms, biases) and
//! GPT-2's position table stay [`Tensor`]s in f32; quantized GGUF types are
//! widened to f32 on load.

use std::borrow::Cow;
use std::ops::Range;

use super::Tensor;

/// A 16-bit float format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    /// IEEE binary16.
    F16,
    /// bfloat16 (the high half of an f32).
    Bf16,
}

impl Half {
    /// Whether the 16 bits `h` are a finite value (not ±inf, not NaN).
    pub fn is_finite(self, h: u16) -> bool {
        match self {
            Half::F16 => h & 0x7c00 != 0x7c00,
            Half::Bf16 => h & 0x7f80 != 0x7f80,
        }
    }

    /// One value as f32.
    pub fn to_f32(self, h: u16) -> f32 {
        match self {
            Half::F16 => attnscope_simd128::f16_to_f32(h),
            Half::Bf16 => attnscope_simd128::bf16_to_f32(h),
        }
    }

    /// `dst[i] = src[i]` widened, over `dst`'s length (`src` at least as
    /// long; every value finite, as every stored weight is).
    /// Natively, IEEE half goes through the `half` crate's slice conversion
    /// (F16C's `vcvtph2ps`, detected at run time: the bit arithmetic did not
    /// vectorise there, and made a 16-bit keystroke 3× slower than f32);
    /// in wasm, which has no such instruction, through the bit arithmetic.
    pub fn widen(self, src: &[u16], dst: &mut [f32]) {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Half::F16 => {
                use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
                src[..dst.len()].reinterpret_cast::<half::f16>().convert_to_f32_slice(dst)
            }
            #[cfg(target_arch = "wasm32")]
            Half::F16 => attnscope_simd128::widen_f16(src, dst),
            Half::Bf16 => attnscope_simd128::widen_bf16(src, dst),
        }
    }
}

/// A matrix's values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    /// 16-bit values' bits, every one finite.
    Half(Half, Vec<u16>),
}

/// A borrowed view of [`Values`] (what the kernels take).
#[derive(Debug, Clone, Copy)]
pub enum ValuesRef<'a> {
    F32(&'a [f32]),
    Half(Half, &'a [u16]),
}

impl<'a> ValuesRef<'a> {
    pub fn len(&self) -> usize {
        match self {
            ValuesRef::F32(v) => v.len(),
            ValuesRef::Half(_, v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values `range` (panics past the end).
    pub fn slice(self, range: Range<usize>) -> ValuesRef<'a> {
        match self {
            ValuesRef::F32(v) => ValuesRef::F32(&v[range]),
            ValuesRef::Half(h, v) => ValuesRef::Half(h, &v[range]),
        }
    }

    /// `dst` = the first `dst.len()` values as f32.
    pub fn widen_into(self, dst: &mut [f32]) {
        match self {
            ValuesRef::F32(v) => dst.copy_from_slice(&v[..dst.len()]),
            ValuesRef::Half(h, v) => h.widen(v, dst),
        }
    }

    /// Every value as f32, borrowed when they already are.
    pub fn to_f32(self) -> Cow<'a, [f32]> {
        match self {
            ValuesRef::F32(v) => Cow::Borrowed(v),
            ValuesRef::Half(..) => {
                let mut out = vec![0.0; self.len()];
                self.widen_into(&mut out);
                Cow::Owned(out)
            }
        }
    }
}

impl<'a> From<&'a [f32]> for ValuesRef<'a> {
    fn from(v: &'a [f32]) -> Self {
        ValuesRef::F32(v)
    }
}

impl<'a, const N: usize> From<&'a [f32; N]> for ValuesRef<'a> {
    fn from(v: &'a [f32; N]) -> Self {
        ValuesRef::F32(v)
    }
}

impl<'a> From<&'a Vec<f32>> for ValuesRef<'a> {
    fn from(v: &'a Vec<f32>) -> Self {
        ValuesRef::F32(v)
    }
}

impl<'a> From<&'a Matrix> for ValuesRef<'a> {
    fn from(m: &'a Matrix) -> Self {
        m.values()
    }
}

/// A weight matrix or table, `[rows, cols]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub shape: Vec<usize>,
    pub data: Values,
}

impl From<Tensor> for Matrix {
    fn from(t: Tensor) -> Self {
        Matrix { shape: t.shape, data: Values::F32(t.data) }
    }
}

impl Matrix {
    /// An f32 matrix.
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        Matrix { shape: shape.to_vec(), data: Values::F32(data) }
    }

    /// `shape` filled with `value` (f32).
    pub fn filled(shape: &[usize], value: f32) -> Self {
        Tensor::filled(shape, value).into()
    }

    pub fn values(&self) -> ValuesRef<'_> {
        match &self.data {
            Values::F32(v) => ValuesRef::F32(v),
            Values::Half(h, v) => ValuesRef::Half(*h, v),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The 16-bit format its values are kept in (`None`: f32).
    pub fn format(&self) -> Option<Half> {
        match self.data {
            Values::F32(_) => None,
            Values::Half(h, _) => Some(h),
        }
    }

    /// Bytes its values take.
    pub fn bytes(&self) -> u64 {
        let per_value = if self.format().is_some() { 2 } else { 4 };
        self.len() as u64 * per_value
    }

    /// Whether every value is finite (as loading checks).
    pub fn all_finite(&self) -> bool {
        match &self.data {
            Values::F32(v) => v.iter().all(|v| v.is_finite()),
            Values::Half(h, v) => v.iter().all(|&b| h.is_finite(b)),
        }
    }

    /// The values when they are f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Values::F32(v) => Some(v),
            Values::Half(..) => None,
        }
    }

    /// Every value as f32 (borrowed when f32).
    pub fn to_f32(&self) -> Cow<'_, [f32]> {
        self.values().to_f32()
    }

    /// The columns of one row (the last dimension).
    fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1).max(1)
    }

    /// Row `i` as f32 (borrowed when f32). Panics past the last row.
    pub fn row(&self, i: usize) -> Cow<'_, [f32]> {
        let cols = self.cols();
        self.values().slice(i * cols..(i + 1) * cols).to_f32()
    }

    /// The values rounded to `format` (to nearest) and kept 16-bit, as a
    /// 16-bit checkpoint of them loads.
    pub fn rounded(&self, format: Half) -> Matrix {
        let bits = self
            .to_f32()
            .iter()
            .map(|&v| match format {
                Half::F16 => half::f16::from_f32(v).to_bits(),
                Half::Bf16 => half::bf16::from_f32(v).to_bits(),
            })
            .collect();
        Matrix { shape: self.shape.clone(), data: Values::Half(format, bits) }
    }

    /// Values `range` set to zero (an ablation's cut).
    pub fn zero(&mut self, range: Range<usize>) {
        match &mut self.data {
            Values::F32(v) => v[range].fill(0.0),
            Values::Half(_, v) => v[range].fill(0),
        }
    }

    /// The transpose of a `[rows, cols]` matrix.
    pub fn transposed(&self) -> Self {
        Self::fused_transposed(std::slice::from_ref(self))
    }

    /// `[cols, Σ rows]`: the `[rows_p, cols]` parts' transposes side by side
    /// (Q, K and V `[out, in]` into one `[in, q + k + v]`), in the parts'
    /// format when they share one, else in f32.
    pub fn fused_transposed(parts: &[Matrix]) -> Self {
        let cols = parts.first().map_or(0, |p| p.shape.get(1).copied().unwrap_or(1));
        let width: usize = parts.iter().map(|p| p.len() / cols.max(1)).sum();
        let shape = vec![cols, width];
        let format = parts.first().and_then(Matrix::format);
        match format.filter(|&f| parts.iter().all(|p| p.format() == Some(f))) {
            Some(f) => {
                let views: Vec<&[u16]> = parts
                    .iter()
                    .map(|p| match &p.data {
                        Values::Half(_, v) => v.as_slice(),
                        Values::F32(_) => &[],
                    })
                    .collect();
                Matrix { shape, data: Values::Half(f, fused_transpose(&views, cols)) }
            }
            None => {
                let wide: Vec<Cow<[f32]>> = parts.iter().map(Matrix::to_f32).collect();
                let views: Vec<&[f32]> = wide.iter().map(|w| &w[..]).collect();
                Matrix { shape, data: Values::F32(fused_transpose(&views, cols)) }
            }
        }
    }
}

/// `[cols, Σ rows]` from row-major `[rows_p, cols]` parts, copied in tiles
/// of 32 × 32 so both the reads and the writes stay in cache lines (a plain
/// transpose wrote one value per line: SmolLM2's fused gate and up, 1.8M
/// values, took ~60 ms of the page's wasm in one task).
fn fused_transpose<T: Copy + Default>(parts: &[&[T]], cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let width: usize = parts.iter().map(|p| p.len() / cols.max(1)).sum();
    let mut data = vec![T::default(); cols * width];
    let mut offset = 0;
    for part in parts {
        let rows = part.len() / cols.max(1);
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    let src = &part[r * cols..(r + 1) * cols];
                    for c in c0..(c0 + TILE).min(cols) {
                        data[c * width + offset + r] = src[c];
                    }
                }
            }
        }
        offset += rows;
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every finite f16 and bf16 bit pattern, subnormals and signed zeros
    /// included, widens to the `half` crate's value, one at a time, as a
    /// slice and through the bit arithmetic the browser uses; the finiteness
    /// test agrees with `half`'s.
    #[test]
    fn widening_equals_the_half_crate_on_every_finite_value() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        for format in [Half::F16, Half::Bf16] {
            let want = |h: u16| match format {
                Half::F16 => half::f16::from_bits(h).to_f32(),
                Half::Bf16 => half::bf16::from_bits(h).to_f32(),
            };
            let finite: Vec<u16> = all.iter().copied().filter(|&h| want(h).is_finite()).collect();
            assert!(all.iter().all(|&h| format.is_finite(h) == want(h).is_finite()), "{format:?}");
            let mut wide = vec![0.0f32; finite.len()];
            format.widen(&finite, &mut wide);
            let mut arithmetic = vec![0.0f32; finite.len()];
            match format {
                Half::F16 => attnscope_simd128::widen_f16(&finite, &mut arithmetic),
                Half::Bf16 => attnscope_simd128::widen_bf16(&finite, &mut arithmetic),
            }
            for ((&h, &w), &a) in finite.iter().zip(&wide).zip(&arithmetic) {
                assert_eq!(w.to_bits(), want(h).to_bits(), "{format:?} {h:#06x}");
                assert_eq!(a.to_bits(), want(h).to_bits(), "{format:?} {h:#06x} (bit arithmetic)");
                assert_eq!(format.to_f32(h).to_bits(), want(h).to_bits(), "{format:?} {h:#06x}");
            }
        }
    }

    fn half_matrix(shape: &[usize], seed: u16) -> Matrix {
        let n: usize = shape.iter().product();
        let bits = (0..n as u16).map(|i| half::f16::from_f32((i.wrapping_mul(7) ^ seed) as f32 * 0.01).to_bits());
        Matrix { shape: shape.to_vec(), data: Values::Half(Half::F16, bits.collect()) }
    }

    /// A 16-bit fused transpose stays 16-bit and equals the f32 one widened;
    /// parts of mixed formats come out f32; rows and zeroing read and cut
    /// the values where an f32 matrix has them.
    #[test]
    fn sixteen_bit_matrices_transpose_read_and_cut_like_f32() {
        let parts = [half_matrix(&[5, 7], 1), half_matrix(&[3, 7], 2)];
        let wide: Vec<Matrix> = parts.iter().map(|p| Matrix::f32(&p.shape, p.to_f32().into_owned())).collect();
        let fused = Matrix::fused_transposed(&parts);
        assert_eq!(fused.format(), Some(Half::F16));
        assert_eq!(fused.shape, vec![7, 8]);
        assert_eq!(fused.to_f32(), Matrix::fused_transposed(&wide).to_f32());
        let mixed = Matrix::fused_transposed(&[parts[0].clone(), wide[1].clone()]);
        assert_eq!((mixed.format(), mixed.to_f32()), (None, fused.to_f32()));
        assert_eq!(fused.row(2), &fused.to_f32()[16..24]);
        assert_eq!(fused.bytes(), 56 * 2);
        let mut cut = fused.clone();
        cut.zero(3..9);
        let want: Vec<f32> =
            fused.to_f32().iter().enumerate().map(|(i, &v)| if (3..9).contains(&i) { 0.0 } else { v }).collect();
        assert_eq!(cut.to_f32(), want);
    }
}
