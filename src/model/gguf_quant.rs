//! ggml's tensor encodings to f32: F32, F16, BF16 and the 32-element block
//! quantizations Q8_0 (an f16 scale and 32 signed bytes), Q4_0 (an f16
//! scale and 32 nibbles offset by 8) and Q4_1 (an f16 scale, an f16 minimum
//! and 32 nibbles), as `ggml-quants.c` decodes them: in a 4-bit block, byte
//! j holds element j in its low nibble and element j + 16 in its high one.

use half::{bf16, f16};

use super::gguf::TensorType;

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `bytes` (whole blocks of `kind`, as `Gguf::parse` checked) as f32 values.
pub fn dequantize(kind: TensorType, bytes: &[u8]) -> Vec<f32> {
    let (per_block, block_bytes) = kind.block();
    let mut out = Vec::with_capacity(bytes.len() / block_bytes as usize * per_block as usize);
    match kind {
        TensorType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        TensorType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        TensorType::BF16 => out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        TensorType::Q8_0 => {
            for block in bytes.chunks_exact(34) {
                let d = f16_at(block, 0);
                out.extend(block[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        TensorType::Q4_0 => {
            for block in bytes.chunks_exact(18) {
                let (d, qs) = (f16_at(block, 0), &block[2..]);
                out.extend(qs.iter().map(|&q| ((q & 0x0f) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        TensorType::Q4_1 => {
            for block in bytes.chunks_exact(20) {
                let (d, m, qs) = (f16_at(block, 0), f16_at(block, 2), &block[4..]);
                out.extend(qs.iter().map(|&q| (q & 0x0f) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q8_0_scales_signed_bytes() {
        let mut block = f16_bytes(0.5).to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(TensorType::Q8_0, &block);
        assert_eq!(y.len(), 32);
        assert_eq!((y[0], y[16], y[31]), (-8.0, 0.0, 7.5));
    }

    #[test]
    fn q4_0_puts_low_nibbles_first_then_high_ones_offset_by_eight() {
        let mut block = f16_bytes(2.0).to_vec();
        block.extend((0..16).map(|j| (j as u8) | (15 - j as u8) << 4));
        let y = dequantize(TensorType::Q4_0, &block);
        assert_eq!(y[..3], [-16.0, -14.0, -12.0]);
        assert_eq!(y[16..19], [14.0, 12.0, 10.0]);
        assert_eq!(y[15], 14.0);
    }

    #[test]
    fn q4_1_adds_the_block_minimum() {
        let mut block = f16_bytes(0.25).to_vec();
        block.extend(f16_bytes(-1.0));
        block.extend([0x31u8; 16]); // low nibble 1, high nibble 3
        let y = dequantize(TensorType::Q4_1, &block);
        assert_eq!(y.len(), 32);
        assert!(y[..16].iter().all(|&v| v == -0.75) && y[16..].iter().all(|&v| v == -0.25), "{y:?}");
    }

    #[test]
    fn plain_types_read_little_endian() {
        assert_eq!(dequantize(TensorType::F32, &1.5f32.to_le_bytes()), [1.5]);
        assert_eq!(dequantize(TensorType::F16, &f16_bytes(-2.0)), [-2.0]);
        assert_eq!(dequantize(TensorType::BF16, &bf16::from_f32(3.0).to_le_bytes()), [3.0]);
    }
}
