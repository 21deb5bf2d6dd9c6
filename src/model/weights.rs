//! GPT-2 weights from safetensors: names, shapes and dtypes checked against the config.

use safetensors::{Dtype, SafeTensors};

use super::{ModelConfig, ModelError};

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
        Ok(Tensor { shape: expected.to_vec(), data })
    }
}

impl Gpt2Weights {
    /// Reads every tensor of a GPT-2 checkpoint (with or without the `transformer.` prefix).
    pub fn from_safetensors(bytes: &[u8], config: &ModelConfig) -> Result<Self, ModelError> {
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
