//! Safetensors files read by range ([`FileBytes`]): the header first (its
//! length and entry count bounded before it is parsed, every tensor's place
//! checked against the file's size), then each tensor's bytes straight into
//! the vector that keeps it, a piece at a time: a 16-bit matrix is read into
//! its 16-bit values and an f32 one into its f32 values, with no copy of the
//! file or of a whole tensor's bytes beside them.

use std::collections::HashMap;

use bytemuck::Pod;
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::Dtype;

use super::file_bytes::{read_vec, FileBytes};
use super::matrix::{Half, Matrix, Values};
use super::weights::{count_entries, TensorSource, MAX_HEADER_BYTES, PACED_ELEMENTS};
use super::{ModelError, Tensor};
use crate::pace::at_once;

// Tensor bytes are copied into f32 and u16 values as they are: safetensors
// is little-endian, and so is every target this crate builds for.
const _: () = assert!(cfg!(target_endian = "little"), "the safetensors reader assumes a little-endian target");

/// One safetensors file: where each tensor's bytes are.
struct Shard<'a, F: ?Sized> {
    file: &'a F,
    /// Where the tensors' bytes begin: after the 8-byte length and the header.
    body: u64,
    tensors: HashMap<String, TensorInfo>,
}

fn corrupt(problem: String) -> ModelError {
    ModelError::Safetensors(problem)
}

impl<'a, F: FileBytes + ?Sized> Shard<'a, F> {
    /// Reads and checks the header: its length against [`MAX_HEADER_BYTES`]
    /// and the file, its entries against the tensor bound, then every
    /// tensor's byte range (contiguous from the body's start, as long as its
    /// shape and dtype say, ending where the file ends).
    fn open(file: &'a F) -> Result<Self, ModelError> {
        let size = file.size();
        let first =
            read_vec(file, 0, 8).ok_or_else(|| corrupt("shorter than the 8 bytes of its header length".into()))?;
        let length = u64::from_le_bytes(first.try_into().unwrap_or_default());
        if length > MAX_HEADER_BYTES {
            return Err(ModelError::SafetensorsHeader { bytes: length, limit: MAX_HEADER_BYTES });
        }
        let header = read_vec(file, 8, length)
            .ok_or_else(|| corrupt(format!("its header claims {length} bytes but the file has {size}")))?;
        count_entries(&header)?;
        let metadata: Metadata =
            serde_json::from_slice(&header).map_err(|e| corrupt(format!("its header is not valid: {e}")))?;
        let mut tensors: Vec<(String, TensorInfo)> =
            metadata.tensors().into_iter().map(|(name, info)| (name, info.clone())).collect();
        tensors.sort_by_key(|(_, info)| info.data_offsets);
        let body = 8 + length; // ≤ MAX_HEADER_BYTES + 8
        let mut end = 0usize;
        for (name, info) in &tensors {
            let (start, stop) = info.data_offsets;
            let bits = info.shape.iter().try_fold(info.dtype.bitsize(), |n, &d| n.checked_mul(d));
            let wanted = bits.filter(|b| b % 8 == 0).map(|b| b / 8);
            if start != end || stop < start || wanted != Some(stop - start) {
                return Err(corrupt(format!(
                    "tensor `{name}` is placed at bytes {start}..{stop}, not right after the previous tensor \
                     (at {end}) with the {} bytes its shape {:?} of {:?} needs",
                    wanted.map_or_else(|| "too many".into(), |w| w.to_string()),
                    info.shape,
                    info.dtype
                )));
            }
            end = stop;
        }
        if body.checked_add(end as u64) != Some(size) {
            return Err(corrupt(format!(
                "its header places {end} bytes of tensors after it, but the file has {}",
                size.saturating_sub(body)
            )));
        }
        Ok(Self { file, body, tensors: tensors.into_iter().collect() })
    }
}

/// `count` values of `T` at byte `at` of `file`, read straight into the
/// vector that keeps them, [`PACED_ELEMENTS`] at a time; each piece is given
/// to `check` with its first index while it is fresh in the cache, then
/// `pause` is awaited.
async fn read_values<T: Pod, F: FileBytes + ?Sized>(
    file: &F,
    at: u64,
    count: usize,
    mut check: impl FnMut(&[T], usize) -> Result<(), ModelError>,
    pause: &mut impl AsyncFnMut(),
) -> Result<Vec<T>, ModelError> {
    let mut out = vec![T::zeroed(); count];
    for (i, piece) in out.chunks_mut(PACED_ELEMENTS).enumerate() {
        let first = i * PACED_ELEMENTS;
        file.copy_to(at + (first * size_of::<T>()) as u64, bytemuck::cast_slice_mut(piece));
        check(piece, first)?;
        pause().await;
    }
    Ok(out)
}

/// The first non-finite f32 of a piece, as the error naming it.
fn finite_f32(name: &str, piece: &[f32], first: usize) -> Result<(), ModelError> {
    match piece.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(ModelError::NonFiniteWeight { name: name.to_owned(), index: first + i, value: piece[i] }),
        None => Ok(()),
    }
}

/// The first non-finite 16-bit value of a piece, as the error naming it.
fn finite_half(name: &str, format: Half, piece: &[u16], first: usize) -> Result<(), ModelError> {
    match piece.iter().position(|&h| !format.is_finite(h)) {
        Some(i) => {
            let value = format.to_f32(piece[i]);
            Err(ModelError::NonFiniteWeight { name: name.to_owned(), index: first + i, value })
        }
        None => Ok(()),
    }
}

fn half_format(dtype: Dtype) -> Option<Half> {
    match dtype {
        Dtype::F16 => Some(Half::F16),
        Dtype::BF16 => Some(Half::Bf16),
        _ => None,
    }
}

/// Safetensors files (one, or a checkpoint's shards) by range.
pub(super) struct Reader<'a, F: ?Sized> {
    files: Vec<Shard<'a, F>>,
}

/// Where one tensor's bytes are, checked to have the shape asked for and a float dtype.
struct Located<'r, F: ?Sized> {
    file: &'r F,
    at: u64,
    count: usize,
    dtype: Dtype,
}

impl<'a, F: FileBytes + ?Sized> Reader<'a, F> {
    /// Reads every file's header (a tensor is later taken from the first file that holds it).
    pub(super) fn open(files: &[&'a F]) -> Result<Self, ModelError> {
        Ok(Self { files: files.iter().map(|f| Shard::open(*f)).collect::<Result<_, _>>()? })
    }

    fn locate(&self, name: &str, expected: &[usize]) -> Result<Located<'_, F>, ModelError> {
        let (shard, info) = self
            .files
            .iter()
            .find_map(|s| s.tensors.get(name).map(|info| (s, info)))
            .ok_or_else(|| ModelError::MissingTensor(name.to_owned()))?;
        if info.shape != expected {
            return Err(ModelError::TensorShape {
                name: name.to_owned(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        match info.dtype {
            dtype @ (Dtype::F32 | Dtype::F16 | Dtype::BF16) => Ok(Located {
                file: shard.file,
                at: shard.body + info.data_offsets.0 as u64,
                count: expected.iter().product(),
                dtype,
            }),
            other => Err(ModelError::TensorDtype { name: name.to_owned(), dtype: format!("{other:?}") }),
        }
    }
}

impl<F: FileBytes + ?Sized> TensorSource for Reader<'_, F> {
    fn has(&self, name: &str) -> bool {
        self.files.iter().any(|f| f.tensors.contains_key(name))
    }

    fn tensor(&self, name: &str, expected: &[usize]) -> Result<Tensor, ModelError> {
        at_once(self.tensor_paced(name, expected, &mut async || {}))
    }

    /// f32 read as it is; 16-bit values widened a piece at a time through one piece of scratch.
    async fn tensor_paced(
        &self,
        name: &str,
        expected: &[usize],
        pause: &mut impl AsyncFnMut(),
    ) -> Result<Tensor, ModelError> {
        let Located { file, at, count, dtype } = self.locate(name, expected)?;
        let data = match half_format(dtype) {
            None => read_values(file, at, count, |p: &[f32], i| finite_f32(name, p, i), pause).await?,
            Some(format) => {
                let mut data = Vec::with_capacity(count);
                let mut scratch = vec![0u16; count.min(PACED_ELEMENTS)];
                while data.len() < count {
                    let piece = &mut scratch[..(count - data.len()).min(PACED_ELEMENTS)];
                    file.copy_to(at + 2 * data.len() as u64, bytemuck::cast_slice_mut(piece));
                    finite_half(name, format, piece, data.len())?;
                    data.extend(piece.iter().map(|&h| format.to_f32(h)));
                    pause().await;
                }
                data
            }
        };
        Ok(Tensor { shape: expected.to_vec(), data })
    }

    /// 16-bit values kept as they are (checked finite), f32 read as a tensor.
    async fn matrix_paced(
        &self,
        name: &str,
        expected: &[usize],
        pause: &mut impl AsyncFnMut(),
    ) -> Result<Matrix, ModelError> {
        let located = self.locate(name, expected)?;
        let Some(format) = half_format(located.dtype) else {
            return self.tensor_paced(name, expected, pause).await.map(Matrix::from);
        };
        let check = |p: &[u16], i| finite_half(name, format, p, i);
        let bits = read_values(located.file, located.at, located.count, check, pause).await?;
        Ok(Matrix { shape: expected.to_vec(), data: Values::Half(format, bits) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::file_bytes::tests::Counted;
    use super::super::{ModelConfig, Weights};
    use super::*;

    fn fixture(dir: &str) -> (ModelConfig, Vec<u8>) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
        let config = ModelConfig::from_json(&std::fs::read(root.join("config.json")).unwrap()).unwrap();
        (config, std::fs::read(root.join("model.safetensors")).unwrap())
    }

    /// Each byte is read once, in reads no larger than a piece, and the
    /// weights equal those read from a slice.
    #[test]
    fn each_tensor_is_read_once_in_pieces() {
        for dir in ["gpt2-tiny", "gpt2-tiny-f16", "gpt2-tiny-bf16", "llama-tiny"] {
            let (config, bytes) = fixture(dir);
            let counted = Counted::new(&bytes);
            let weights = Weights::from_shards(&[&counted], &config).unwrap();
            let (largest, total) = counted.largest_and_total();
            assert!(total <= bytes.len(), "{dir}: {total} bytes read of {}", bytes.len());
            assert!(largest <= 4 * PACED_ELEMENTS, "{dir}: a read of {largest} bytes");
            let mut reads = counted.reads.borrow().clone();
            reads.sort();
            assert!(reads.windows(2).all(|w| w[0].0 + w[0].1 as u64 <= w[1].0), "{dir}: a byte read twice");
            let from_slice = Weights::from_safetensors(&bytes, &config).unwrap();
            assert_eq!(weights.wte, from_slice.wte, "{dir}");
            assert_eq!(weights.blocks[0].mlp_fc_w, from_slice.blocks[0].mlp_fc_w, "{dir}");
        }
    }

    /// A large tensor is read a piece at a time: 16-bit straight into its
    /// values, a widened one through a scratch piece, each piece checked
    /// finite (the error names the index in the whole tensor).
    #[test]
    fn large_tensors_go_in_pieces_and_name_their_first_bad_value() {
        let n = 2 * PACED_ELEMENTS + 5;
        let bad = PACED_ELEMENTS + 3;
        for (dtype, one, nan) in
            [(Dtype::F16, 0x3c00u16.to_le_bytes().to_vec(), 0x7e00u16), (Dtype::BF16, vec![0x80, 0x3f], 0x7fc0)]
        {
            let mut raw: Vec<u8> = one.repeat(n);
            let file = |raw: &[u8]| {
                let view = safetensors::tensor::TensorView::new(dtype, vec![n], raw).unwrap();
                safetensors::serialize([("w", view)], None).unwrap()
            };
            let good = file(&raw);
            let counted = Counted::new(&good);
            let reader = Reader::open(&[&counted]).unwrap();
            let m = reader.matrix("w", &[n]).unwrap();
            assert_eq!(m.to_f32().iter().filter(|&&v| v == 1.0).count(), n);
            let t = reader.tensor("w", &[n]).unwrap();
            assert!(t.data.iter().all(|&v| v == 1.0));
            assert!(counted.largest_and_total().0 <= 2 * PACED_ELEMENTS);
            raw[2 * bad..2 * bad + 2].copy_from_slice(&nan.to_le_bytes());
            let bad_file = file(&raw);
            let reader = Reader::open(&[&bad_file]).unwrap();
            for err in [reader.matrix("w", &[n]).unwrap_err(), reader.tensor("w", &[n]).unwrap_err()] {
                assert!(matches!(err, ModelError::NonFiniteWeight { index, .. } if index == bad), "{err}");
            }
        }
    }

    /// A header whose tensors overlap, leave a gap, are shorter than their
    /// shape, or do not end where the file ends is refused before any
    /// tensor is read.
    #[test]
    fn misplaced_tensors_are_refused_from_the_header() {
        let file = |entries: &str, body: usize| {
            let header = format!("{{{entries}}}").into_bytes();
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend(header);
            out.extend(vec![0u8; body]);
            out
        };
        let a = r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
        assert!(Reader::open(&[&file(a, 8)]).is_ok());
        for (entries, body) in [
            (a.to_owned(), 12),
            (a.to_owned(), 4),
            (r#""a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}"#.to_owned(), 8),
            (format!(r#"{a},"b":{{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#), 16),
            (format!(r#"{a},"b":{{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#), 8),
            (r#""a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}"#.to_owned(), 8),
        ] {
            let err = Reader::open(&[&file(&entries, body)]).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.starts_with("model.safetensors is truncated or corrupt"), "{entries} {body}: {err}");
        }
    }
}
