//! GPT-2 weights from safetensors: names, shapes and dtypes checked against
//! the config, every value checked finite. The header is bounded in bytes and
//! in tensors before it is parsed: a file's first 8 bytes may claim anything.

use std::fmt;

use safetensors::{Dtype, SafeTensors};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{ModelConfig, ModelError};

/// The largest safetensors header read (GPT-2's is 15 KB, a 32-layer Llama's under 100 KB).
pub const MAX_HEADER_BYTES: u64 = 4 << 20;
/// The most tensors a header may list (GPT-2 small has 160; a 126-layer Llama about 1,150).
pub const MAX_TENSORS: usize = 16_384;

/// Counts a JSON object's entries without keeping them, and stops at [`MAX_TENSORS`] + 1
/// (the header may also hold `__metadata__`).
struct EntryCount;

impl<'de> serde::Deserialize<'de> for EntryCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = EntryCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryCount, A::Error> {
                let mut n = 0usize;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    n += 1;
                    if n > MAX_TENSORS + 1 {
                        return Err(serde::de::Error::custom(TOO_MANY));
                    }
                }
                Ok(EntryCount)
            }
        }
        deserializer.deserialize_map(Count)
    }
}

const TOO_MANY: &str = "too many tensors";

/// Checks the header's length and its number of entries in constant memory,
/// before `safetensors` parses it into a map.
fn check_header(bytes: &[u8]) -> Result<(), ModelError> {
    let length: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ModelError::Safetensors("shorter than the 8 bytes of its header length".into()))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(ModelError::SafetensorsHeader { bytes: length, limit: MAX_HEADER_BYTES });
    }
    let end = 8 + length as usize; // ≤ MAX_HEADER_BYTES + 8: no overflow
    let header = bytes.get(8..end).ok_or_else(|| {
        ModelError::Safetensors(format!("its header claims {length} bytes but the file has {}", bytes.len()))
    })?;
    match serde_json::from_slice::<EntryCount>(header) {
        Ok(EntryCount) => Ok(()),
        Err(e) if e.to_string().starts_with(TOO_MANY) => Err(ModelError::TooManyTensors { limit: MAX_TENSORS }),
        // Malformed headers are left to safetensors, which names the problem.
        Err(_) => Ok(()),
    }
}

/// A dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One transformer block. Linear weights keep GPT-2's Conv1D layout `[in, out]`.
#[derive(Debug, Clone)]
pub struct BlockWeights {
    pub ln_1_g: Tensor,
    pub ln_1_b: Tensor,
    /// `[d, 3d]`: Q, K and V projections side by side.
    pub attn_qkv_w: Tensor,
    pub attn_qkv_b: Tensor,
    pub attn_proj_w: Tensor,
    pub attn_proj_b: Tensor,
    pub ln_2_g: Tensor,
    pub ln_2_b: Tensor,
    pub mlp_fc_w: Tensor,
    pub mlp_fc_b: Tensor,
    pub mlp_proj_w: Tensor,
    pub mlp_proj_b: Tensor,
}

#[derive(Debug, Clone)]
pub struct Gpt2Weights {
    /// `[vocab, d]`; also the (tied) LM head.
    pub wte: Tensor,
    /// `[n_positions, d]`.
    pub wpe: Tensor,
    pub blocks: Vec<BlockWeights>,
    pub ln_f_g: Tensor,
    pub ln_f_b: Tensor,
}

struct Reader<'a> {
    tensors: SafeTensors<'a>,
    prefix: &'static str,
}

impl Reader<'_> {
    fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor, ModelError> {
        let full = format!("{}{name}", self.prefix);
        let view = self.tensors.tensor(&full).map_err(|_| ModelError::MissingTensor(name.to_owned()))?;
        if view.shape() != expected {
            return Err(ModelError::TensorShape {
                name: full,
                expected: expected.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(ModelError::TensorDtype { name: full, dtype: format!("{other:?}") }),
        };
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFiniteWeight { name: full, index, value: data[index] });
        }
        Ok(Tensor { shape: expected.to_vec(), data })
    }
}

impl Gpt2Weights {
    /// Reads every tensor of a GPT-2 checkpoint (with or without the `transformer.` prefix).
    pub fn from_safetensors(bytes: &[u8], config: &ModelConfig) -> Result<Self, ModelError> {
        check_header(bytes)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors(e.to_string()))?;
        let prefix = if tensors.tensor("wte.weight").is_err() && tensors.tensor("transformer.wte.weight").is_ok() {
            "transformer."
        } else {
            ""
        };
        let r = Reader { tensors, prefix };
        let (d, v, p, m) = (config.n_embd, config.vocab_size, config.n_positions, config.n_inner);
        let blocks = (0..config.n_layer)
            .map(|i| {
                let t = |suffix: &str, shape: &[usize]| r.get(&format!("h.{i}.{suffix}"), shape);
                Ok(BlockWeights {
                    ln_1_g: t("ln_1.weight", &[d])?,
                    ln_1_b: t("ln_1.bias", &[d])?,
                    attn_qkv_w: t("attn.c_attn.weight", &[d, 3 * d])?,
                    attn_qkv_b: t("attn.c_attn.bias", &[3 * d])?,
                    attn_proj_w: t("attn.c_proj.weight", &[d, d])?,
                    attn_proj_b: t("attn.c_proj.bias", &[d])?,
                    ln_2_g: t("ln_2.weight", &[d])?,
                    ln_2_b: t("ln_2.bias", &[d])?,
                    mlp_fc_w: t("mlp.c_fc.weight", &[d, m])?,
                    mlp_fc_b: t("mlp.c_fc.bias", &[m])?,
                    mlp_proj_w: t("mlp.c_proj.weight", &[m, d])?,
                    mlp_proj_b: t("mlp.c_proj.bias", &[d])?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self {
            wte: r.get("wte.weight", &[v, d])?,
            wpe: r.get("wpe.weight", &[p, d])?,
            blocks,
            ln_f_g: r.get("ln_f.weight", &[d])?,
            ln_f_b: r.get("ln_f.bias", &[d])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file of `n` empty tensors, its header padded with spaces to `pad` bytes.
    fn empty_tensors(n: usize, pad: usize) -> Vec<u8> {
        let entries: Vec<String> =
            (0..n).map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#)).collect();
        let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
        header.resize(header.len().max(pad), b' ');
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header);
        file
    }

    /// 850k empty tensors in a 67 MB header were parsed in full (731 MB of memory).
    #[test]
    fn a_header_over_the_byte_bound_is_refused_unparsed() {
        let config = ModelConfig::tiny(1, 1, 4, 4, 4);
        let file = empty_tensors(1, MAX_HEADER_BYTES as usize + 1);
        let err = Gpt2Weights::from_safetensors(&file, &config).unwrap_err();
        assert!(matches!(err, ModelError::SafetensorsHeader { .. }), "{err}");
        // A header length past the file, or past any bound at all.
        let mut lying = u64::MAX.to_le_bytes().to_vec();
        lying.extend(b"{}");
        assert!(matches!(Gpt2Weights::from_safetensors(&lying, &config), Err(ModelError::SafetensorsHeader { .. })));
        let mut short = 100u64.to_le_bytes().to_vec();
        short.extend(b"{}");
        assert!(matches!(Gpt2Weights::from_safetensors(&short, &config), Err(ModelError::Safetensors(_))));
    }

    #[test]
    fn a_header_with_too_many_tensors_is_refused_before_parsing() {
        let config = ModelConfig::tiny(1, 1, 4, 4, 4);
        let err = Gpt2Weights::from_safetensors(&empty_tensors(MAX_TENSORS + 2, 0), &config).unwrap_err();
        assert!(matches!(err, ModelError::TooManyTensors { .. }), "{err}");
        let err = Gpt2Weights::from_safetensors(&empty_tensors(MAX_TENSORS, 0), &config).unwrap_err();
        assert!(matches!(err, ModelError::MissingTensor(_)), "{err}");
    }
}
