//! Weights of either family from safetensors (one file or shards): GPT-2's
//! and Hugging Face Llama's names, shapes and dtypes checked against the
//! config, every value checked finite. The header is bounded in bytes and
//! in tensors before it is parsed: a file's first 8 bytes may claim anything.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::file_bytes::{FileBytes, FileRange};
use super::matrix::{Half, Matrix};
use super::safetensors_file::Reader;
use super::{ModelConfig, ModelError};
use crate::pace::at_once;

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
pub(super) fn check_header(bytes: &[u8]) -> Result<(), ModelError> {
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
    count_entries(header)
}

/// Refuses a header (the JSON after the length) listing more than
/// [`MAX_TENSORS`] tensors, counting them in constant memory before it is
/// parsed into a map. A malformed header passes: its parser names the problem.
pub(super) fn count_entries(header: &[u8]) -> Result<(), ModelError> {
    match serde_json::from_slice::<EntryCount>(header) {
        Ok(EntryCount) => Ok(()),
        Err(e) if e.to_string().starts_with(TOO_MANY) => Err(ModelError::TooManyTensors { limit: MAX_TENSORS }),
        Err(_) => Ok(()),
    }
}

/// A dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// `[rows, cols]` of `value`.
    pub fn filled(shape: &[usize], value: f32) -> Self {
        Self { shape: shape.to_vec(), data: vec![value; shape.iter().product()] }
    }

    /// `[Σ rows, cols]`: the tensors' rows one after another.
    fn stack_rows(parts: &[Tensor]) -> Self {
        let cols = parts.first().map_or(0, |p| p.shape.get(1).copied().unwrap_or(1));
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for part in parts {
            data.extend_from_slice(&part.data);
        }
        let rows = data.len() / cols.max(1);
        Self {
            shape: if parts.first().is_some_and(|p| p.shape.len() == 1) { vec![data.len()] } else { vec![rows, cols] },
            data,
        }
    }
}

/// One transformer block, in one layout for both families. Linear weights
/// are `[in, out]` (GPT-2's Conv1D layout; the Llama family's `[out, in]`
/// Linear weights are transposed on load). Biases a checkpoint lacks are zeros.
#[derive(Debug, Clone)]
pub struct BlockWeights {
    /// The first norm's gain and bias (RMSNorm has no bias: zeros).
    pub ln_1_g: Tensor,
    pub ln_1_b: Tensor,
    /// `[d, q_dim + 2·kv_dim]`: Q, K and V projections side by side.
    pub attn_qkv_w: Matrix,
    pub attn_qkv_b: Tensor,
    /// `[q_dim, d]`.
    pub attn_proj_w: Matrix,
    pub attn_proj_b: Tensor,
    pub ln_2_g: Tensor,
    pub ln_2_b: Tensor,
    /// GPT-2: `[d, n_inner]`. Llama: `[d, 2·n_inner]`, the SwiGLU gate's
    /// columns then the up projection's.
    pub mlp_fc_w: Matrix,
    pub mlp_fc_b: Tensor,
    /// `[n_inner, d]`.
    pub mlp_proj_w: Matrix,
    pub mlp_proj_b: Tensor,
}

/// Every weight of a model of either family.
#[derive(Debug, Clone)]
pub struct Weights {
    /// `[vocab, d]`; also the LM head when it is tied.
    pub wte: Matrix,
    /// `[n_positions, d]`: GPT-2's learned positions (none with RoPE).
    pub wpe: Option<Tensor>,
    pub blocks: Vec<BlockWeights>,
    /// The final norm (RMSNorm: bias zeros).
    pub ln_f_g: Tensor,
    pub ln_f_b: Tensor,
    /// `[vocab, d]`: an untied LM head (`lm_head.weight`); `None` when tied to `wte`.
    pub lm_head: Option<Matrix>,
}

impl BlockWeights {
    /// The block's vectors (norms and biases), in the order of its fields.
    pub fn vectors(&self) -> [&Tensor; 8] {
        [
            &self.ln_1_g,
            &self.ln_1_b,
            &self.attn_qkv_b,
            &self.attn_proj_b,
            &self.ln_2_g,
            &self.ln_2_b,
            &self.mlp_fc_b,
            &self.mlp_proj_b,
        ]
    }

    /// The block's weight matrices, in the order of its fields.
    pub fn matrices(&self) -> [&Matrix; 4] {
        [&self.attn_qkv_w, &self.attn_proj_w, &self.mlp_fc_w, &self.mlp_proj_w]
    }

    /// Bytes the block's values take.
    pub fn bytes(&self) -> u64 {
        let vectors: usize = self.vectors().iter().map(|t| t.data.len()).sum();
        vectors as u64 * 4 + self.matrices().iter().map(|m| m.bytes()).sum::<u64>()
    }

    /// Number of values.
    pub fn params(&self) -> usize {
        self.vectors().iter().map(|t| t.data.len()).sum::<usize>()
            + self.matrices().iter().map(|m| m.len()).sum::<usize>()
    }
}

/// The name the weights had when only GPT-2 loaded.
pub type Gpt2Weights = Weights;

/// Where named tensors come from: safetensors files (one or shards) or a
/// GGUF file, each under Hugging Face's names and shapes.
pub(crate) trait TensorSource {
    /// The tensor `name` as f32, checked to have `shape` and finite values.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError>;
    fn has(&self, name: &str) -> bool;

    /// [`TensorSource::tensor`] for a large table (the token table, an LM
    /// head), widened a piece at a time with `pause` awaited between pieces.
    async fn tensor_paced(
        &self,
        name: &str,
        shape: &[usize],
        pause: &mut impl AsyncFnMut(),
    ) -> Result<Tensor, ModelError> {
        let tensor = self.tensor(name, shape);
        pause().await;
        tensor
    }

    /// The weight matrix or table `name`: 16-bit values kept 16-bit where
    /// the source stores them so, anything else as [`TensorSource::tensor`]
    /// ([`TensorSource::matrix_paced`] at once).
    fn matrix(&self, name: &str, shape: &[usize]) -> Result<Matrix, ModelError> {
        at_once(self.matrix_paced(name, shape, &mut async || {}))
    }

    /// [`TensorSource::matrix`] a piece at a time, as [`TensorSource::tensor_paced`].
    async fn matrix_paced(
        &self,
        name: &str,
        shape: &[usize],
        pause: &mut impl AsyncFnMut(),
    ) -> Result<Matrix, ModelError> {
        self.tensor_paced(name, shape, pause).await.map(Matrix::from)
    }
}

/// Elements widened between two pauses of a paced read (about 10 ms of work).
pub(super) const PACED_ELEMENTS: usize = 1 << 20;

/// `bytes` widened to f32 by `widen`, in pieces of whole `unit` bytes
/// (`per_unit` values each) of about [`PACED_ELEMENTS`] values, each read
/// from the file into one reused buffer (the tensor's bytes are never held
/// whole) and checked finite (as [`finite`], tensor `name`) while it is
/// fresh in the cache, awaiting `pause` after each piece.
pub(crate) async fn widen_paced<F: FileBytes + ?Sized>(
    name: &str,
    bytes: FileRange<'_, F>,
    (unit, per_unit): (usize, usize),
    widen: impl Fn(&[u8]) -> Vec<f32>,
    pause: &mut impl AsyncFnMut(),
) -> Result<Vec<f32>, ModelError> {
    let unit = unit.max(1);
    let mut out = Vec::with_capacity(bytes.len / unit * per_unit);
    let mut pieces = bytes.pieces((PACED_ELEMENTS / per_unit.max(1)).max(1) * unit);
    while let Some(piece) = pieces.next_piece() {
        let at = out.len();
        out.extend(widen(piece));
        if let Some(i) = out[at..].iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFiniteWeight { name: name.to_owned(), index: at + i, value: out[at + i] });
        }
        pause().await;
    }
    Ok(out)
}

/// Little-endian 16-bit values of `format` as their bits, in pieces of
/// [`PACED_ELEMENTS`] values read from the file into one reused buffer, each
/// checked finite (tensor `name`) and followed by `pause`.
pub(crate) async fn halves_paced<F: FileBytes + ?Sized>(
    name: &str,
    format: Half,
    bytes: FileRange<'_, F>,
    pause: &mut impl AsyncFnMut(),
) -> Result<Vec<u16>, ModelError> {
    let mut out = Vec::with_capacity(bytes.len / 2);
    let mut pieces = bytes.pieces(2 * PACED_ELEMENTS);
    while let Some(piece) = pieces.next_piece() {
        let at = out.len();
        out.extend(piece.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])));
        if let Some(i) = out[at..].iter().position(|&h| !format.is_finite(h)) {
            let value = match format {
                Half::F16 => half::f16::from_bits(out[at + i]).to_f32(),
                Half::Bf16 => half::bf16::from_bits(out[at + i]).to_f32(),
            };
            return Err(ModelError::NonFiniteWeight { name: name.to_owned(), index: at + i, value });
        }
        pause().await;
    }
    Ok(out)
}

/// `tensor`, or the error naming its first non-finite value.
pub(crate) fn finite(name: &str, tensor: Tensor) -> Result<Tensor, ModelError> {
    match tensor.data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ModelError::NonFiniteWeight { name: name.to_owned(), index, value: tensor.data[index] }),
        None => Ok(tensor),
    }
}

/// Tensors under a name prefix (`transformer.`, `model.`, or none).
struct Prefixed<'a, S: TensorSource> {
    source: &'a S,
    prefix: &'static str,
}

impl<S: TensorSource> Prefixed<'_, S> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        self.source.tensor(&format!("{}{name}", self.prefix), shape)
    }

    fn matrix(&self, name: &str, shape: &[usize]) -> Result<Matrix, ModelError> {
        self.source.matrix(&format!("{}{name}", self.prefix), shape)
    }

    async fn matrix_paced(
        &self,
        name: &str,
        shape: &[usize],
        pause: &mut impl AsyncFnMut(),
    ) -> Result<Matrix, ModelError> {
        self.source.matrix_paced(&format!("{}{name}", self.prefix), shape, pause).await
    }
}

impl Weights {
    /// Reads every tensor of a single-file checkpoint of `config`'s architecture.
    pub fn from_safetensors(bytes: &[u8], config: &ModelConfig) -> Result<Self, ModelError> {
        Self::from_shards(&[bytes], config)
    }

    /// Reads every tensor of a checkpoint split over several safetensors
    /// files (as `model.safetensors.index.json` lists them); a tensor is
    /// taken from the first file that holds it.
    pub fn from_shards<F: FileBytes + ?Sized>(files: &[&F], config: &ModelConfig) -> Result<Self, ModelError> {
        at_once(Self::from_shards_paced(files, config, async || {}))
    }

    /// [`Weights::from_shards`] a block at a time, awaiting `pause` after
    /// each. The files are read by range ([`FileBytes`]): each tensor's
    /// bytes go straight into the values that keep them.
    pub async fn from_shards_paced<F: FileBytes + ?Sized>(
        files: &[&F],
        config: &ModelConfig,
        pause: impl AsyncFnMut(),
    ) -> Result<Self, ModelError> {
        Self::from_source_paced(&Reader::open(files)?, config, pause).await
    }

    /// The weights from any source of Hugging Face-named tensors, awaiting
    /// `pause` after each large matrix of a block and each piece of a table
    /// (the page gives the thread back there, so that reading a large model
    /// leaves no long task: a whole block of SmolLM2 is ~80 ms of widening
    /// in wasm; elsewhere `pause` returns at once and [`at_once`] takes the
    /// value).
    pub(crate) async fn from_source_paced(
        source: &impl TensorSource,
        config: &ModelConfig,
        mut pause: impl AsyncFnMut(),
    ) -> Result<Self, ModelError> {
        let llama_family = config.architecture.is_llama_family();
        let prefix = if llama_family { llama_prefix(source) } else { gpt2_prefix(source) };
        let r = Prefixed { source, prefix };
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            blocks.push(if llama_family {
                llama_block(&r, config, i, &mut pause).await?
            } else {
                gpt2_block(&r, config, i, &mut pause).await?
            });
        }
        if llama_family {
            llama_rest(&r, config, blocks, &mut pause).await
        } else {
            gpt2_rest(&r, config, blocks, &mut pause).await
        }
    }

    /// The LM head, `[vocab, d]`: its own, or the token table when tied.
    pub fn head(&self) -> &Matrix {
        self.lm_head.as_ref().unwrap_or(&self.wte)
    }

    /// Every matrix and table rounded to `format` and kept 16-bit (vectors
    /// and positions stay f32), as a 16-bit checkpoint of these weights loads.
    pub fn rounded(&self, format: Half) -> Weights {
        let mut out = self.clone();
        for b in &mut out.blocks {
            for m in [&mut b.attn_qkv_w, &mut b.attn_proj_w, &mut b.mlp_fc_w, &mut b.mlp_proj_w] {
                *m = m.rounded(format);
            }
        }
        out.wte = self.wte.rounded(format);
        out.lm_head = self.lm_head.as_ref().map(|m| m.rounded(format));
        out
    }

    /// Whether every value is finite (as loading checks).
    pub fn all_finite(&self) -> bool {
        let vectors = [self.wpe.as_ref(), Some(&self.ln_f_g), Some(&self.ln_f_b)].into_iter().flatten();
        let blocks = self.blocks.iter().all(|b| {
            b.vectors().iter().all(|t| t.data.iter().all(|v| v.is_finite()))
                && b.matrices().iter().all(|m| m.all_finite())
        });
        blocks
            && [Some(&self.wte), self.lm_head.as_ref()].into_iter().flatten().all(Matrix::all_finite)
            && vectors.flat_map(|t| &t.data).all(|v| v.is_finite())
    }

    /// Bytes the weights take in memory (16-bit matrices in 16 bits, the rest in f32).
    pub fn bytes(&self) -> u64 {
        let tables = [Some(&self.wte), self.lm_head.as_ref()].into_iter().flatten().map(Matrix::bytes).sum::<u64>();
        let vectors = [self.wpe.as_ref(), Some(&self.ln_f_g), Some(&self.ln_f_b)].into_iter().flatten();
        tables
            + vectors.map(|t| t.data.len() as u64 * 4).sum::<u64>()
            + self.blocks.iter().map(BlockWeights::bytes).sum::<u64>()
    }
}

/// A GPT-2 checkpoint's prefix (`transformer.` or none).
fn gpt2_prefix(source: &impl TensorSource) -> &'static str {
    if !source.has("wte.weight") && source.has("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    }
}

/// Block `i` of a GPT-2 checkpoint, a pause after each weight matrix.
async fn gpt2_block<S: TensorSource>(
    r: &Prefixed<'_, S>,
    config: &ModelConfig,
    i: usize,
    pause: &mut impl AsyncFnMut(),
) -> Result<BlockWeights, ModelError> {
    let (d, m) = (config.n_embd, config.n_inner);
    let t = |suffix: &str, shape: &[usize]| r.get(&format!("h.{i}.{suffix}"), shape);
    // In the checkpoint's order (a missing tensor is named as before: the block's first).
    let (ln_1_g, ln_1_b) = (t("ln_1.weight", &[d])?, t("ln_1.bias", &[d])?);
    let w = |suffix: &str, shape: &[usize]| r.matrix(&format!("h.{i}.{suffix}"), shape);
    let attn_qkv_w = w("attn.c_attn.weight", &[d, 3 * d])?;
    pause().await;
    let attn_qkv_b = t("attn.c_attn.bias", &[3 * d])?;
    let attn_proj_w = w("attn.c_proj.weight", &[d, d])?;
    pause().await;
    let attn_proj_b = t("attn.c_proj.bias", &[d])?;
    let (ln_2_g, ln_2_b) = (t("ln_2.weight", &[d])?, t("ln_2.bias", &[d])?);
    let mlp_fc_w = w("mlp.c_fc.weight", &[d, m])?;
    pause().await;
    let mlp_fc_b = t("mlp.c_fc.bias", &[m])?;
    let mlp_proj_w = w("mlp.c_proj.weight", &[m, d])?;
    pause().await;
    let mlp_proj_b = t("mlp.c_proj.bias", &[d])?;
    Ok(BlockWeights {
        ln_1_g,
        ln_1_b,
        attn_qkv_w,
        attn_qkv_b,
        attn_proj_w,
        attn_proj_b,
        ln_2_g,
        ln_2_b,
        mlp_fc_w,
        mlp_fc_b,
        mlp_proj_w,
        mlp_proj_b,
    })
}

/// A GPT-2 checkpoint's tables and final norm around its `blocks`.
async fn gpt2_rest<S: TensorSource>(
    r: &Prefixed<'_, S>,
    config: &ModelConfig,
    blocks: Vec<BlockWeights>,
    pause: &mut impl AsyncFnMut(),
) -> Result<Weights, ModelError> {
    let (d, v, p) = (config.n_embd, config.vocab_size, config.n_positions);
    Ok(Weights {
        wte: r.matrix_paced("wte.weight", &[v, d], pause).await?,
        wpe: Some(r.get("wpe.weight", &[p, d])?),
        blocks,
        ln_f_g: r.get("ln_f.weight", &[d])?,
        ln_f_b: r.get("ln_f.bias", &[d])?,
        lm_head: None,
    })
}

/// A Llama-family checkpoint's prefix under Hugging Face's names (`model.` or none).
fn llama_prefix(source: &impl TensorSource) -> &'static str {
    if !source.has("model.embed_tokens.weight") && source.has("embed_tokens.weight") {
        ""
    } else {
        "model."
    }
}

/// Block `i` of a Llama-family checkpoint: Linear weights `[out, in]`
/// transposed and Q/K/V and gate/up fused; a pause after each large matrix.
async fn llama_block<S: TensorSource>(
    r: &Prefixed<'_, S>,
    config: &ModelConfig,
    i: usize,
    pause: &mut impl AsyncFnMut(),
) -> Result<BlockWeights, ModelError> {
    let (d, m) = (config.n_embd, config.n_inner);
    let (q_dim, kv_dim) = (config.q_dim(), config.kv_dim());
    let t = |suffix: &str, shape: &[usize]| r.get(&format!("layers.{i}.{suffix}"), shape);
    let bias = |on: bool, suffix: &str, n: usize| if on { t(suffix, &[n]) } else { Ok(Tensor::filled(&[n], 0.0)) };
    let w = |suffix: &str, shape: &[usize]| r.matrix(&format!("layers.{i}.{suffix}"), shape);
    let attn = |p: &str, out: usize| w(&format!("self_attn.{p}_proj.weight"), &[out, d]);
    let attn_b = |p: &str, n: usize| bias(config.qkv_bias, &format!("self_attn.{p}_proj.bias"), n);
    let mlp = |p: &str, out: usize, inp: usize| w(&format!("mlp.{p}_proj.weight"), &[out, inp]);
    let mlp_b = |p: &str, n: usize| bias(config.mlp_bias, &format!("mlp.{p}_proj.bias"), n);
    // Q, K and V first, as before (a missing tensor is named the same).
    let q = attn("q", q_dim)?;
    pause().await;
    let (k, v) = (attn("k", kv_dim)?, attn("v", kv_dim)?);
    pause().await;
    let attn_qkv_w = Matrix::fused_transposed(&[q, k, v]);
    let attn_proj_w = w("self_attn.o_proj.weight", &[d, q_dim])?.transposed();
    pause().await;
    let gate = mlp("gate", m, d)?;
    pause().await;
    let up = mlp("up", m, d)?;
    pause().await;
    let mlp_fc_w = Matrix::fused_transposed(&[gate, up]);
    pause().await;
    let mlp_proj_w = mlp("down", d, m)?.transposed();
    pause().await;
    Ok(BlockWeights {
        ln_1_g: t("input_layernorm.weight", &[d])?,
        ln_1_b: Tensor::filled(&[d], 0.0),
        attn_qkv_w,
        attn_qkv_b: Tensor::stack_rows(&[attn_b("q", q_dim)?, attn_b("k", kv_dim)?, attn_b("v", kv_dim)?]),
        attn_proj_w,
        attn_proj_b: bias(config.o_bias, "self_attn.o_proj.bias", d)?,
        ln_2_g: t("post_attention_layernorm.weight", &[d])?,
        ln_2_b: Tensor::filled(&[d], 0.0),
        mlp_fc_w,
        mlp_fc_b: Tensor::stack_rows(&[mlp_b("gate", m)?, mlp_b("up", m)?]),
        mlp_proj_w,
        mlp_proj_b: mlp_b("down", d)?,
    })
}

/// A Llama-family checkpoint's token table, final norm and LM head (its own
/// unless tied) around its `blocks`.
async fn llama_rest<S: TensorSource>(
    r: &Prefixed<'_, S>,
    config: &ModelConfig,
    blocks: Vec<BlockWeights>,
    pause: &mut impl AsyncFnMut(),
) -> Result<Weights, ModelError> {
    let (d, v) = (config.n_embd, config.vocab_size);
    let lm_head = match config.tie_word_embeddings {
        true => None,
        false => Some(r.source.matrix_paced("lm_head.weight", &[v, d], pause).await?),
    };
    Ok(Weights {
        wte: r.matrix_paced("embed_tokens.weight", &[v, d], pause).await?,
        wpe: None,
        blocks,
        ln_f_g: r.get("norm.weight", &[d])?,
        ln_f_b: Tensor::filled(&[d], 0.0),
        lm_head,
    })
}

#[cfg(test)]
mod tests {
    use super::super::file_bytes::tests::Counted;
    use super::*;

    /// The tiled fused transpose against the definition, on ragged sizes
    /// (parts and columns not multiples of the tile, one row, one column).
    #[test]
    fn fused_transposes_put_each_part_s_transpose_side_by_side() {
        for (rows, cols) in [(vec![33, 70, 1], 45), (vec![1], 1), (vec![64, 64], 32), (vec![5, 3], 97)] {
            let parts: Vec<Matrix> = rows
                .iter()
                .enumerate()
                .map(|(p, &r)| Matrix::f32(&[r, cols], (0..r * cols).map(|i| (p * 10_000 + i) as f32).collect()))
                .collect();
            let fused = Matrix::fused_transposed(&parts);
            let (fused_data, parts_data): (Vec<f32>, Vec<Vec<f32>>) =
                (fused.to_f32().into_owned(), parts.iter().map(|p| p.to_f32().into_owned()).collect());
            let width: usize = rows.iter().sum();
            assert_eq!(fused.shape, vec![cols, width]);
            let mut offset = 0;
            for (part, &r) in parts_data.iter().zip(&rows) {
                for i in 0..r {
                    for c in 0..cols {
                        assert_eq!(fused_data[c * width + offset + i], part[i * cols + c], "{rows:?}×{cols}");
                    }
                }
                offset += r;
            }
            assert_eq!(parts[0].transposed(), Matrix::fused_transposed(&parts[..1]));
        }
    }

    /// Both families' fixtures read a matrix at a time: a pause after each
    /// large matrix of a block, and the same tensors as read at once; a table of more than
    /// [`PACED_ELEMENTS`] values is widened in pieces.
    #[test]
    fn a_paced_read_pauses_after_each_block_and_gives_the_same_tensors() {
        for dir in ["tests/fixtures/gpt2-tiny", "tests/fixtures/llama-tiny"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let config = ModelConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
            let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
            let whole = Weights::from_safetensors(&bytes, &config).unwrap();
            let mut pauses = 0;
            let paced = at_once(Weights::from_shards_paced(&[&bytes], &config, async || pauses += 1)).unwrap();
            // Each large matrix of each block (GPT-2: QKV, out, fc, proj; Llama: Q; K and V; out;
            // gate; up; gate and up fused; down), then the LM head if untied and the token table (one piece each here).
            let per_block = if config.architecture.is_llama_family() { 7 } else { 4 };
            let want = config.n_layer * per_block + 1 + usize::from(!config.tie_word_embeddings);
            assert_eq!(pauses, want, "{}", dir.display());
            assert_eq!((&paced.wte, &paced.wpe, &paced.ln_f_g), (&whole.wte, &whole.wpe, &whole.ln_f_g));
            for (a, b) in paced.blocks.iter().zip(&whole.blocks) {
                assert_eq!(
                    (&a.attn_qkv_w, &a.attn_qkv_b, &a.attn_proj_w, &a.mlp_fc_w, &a.mlp_proj_w),
                    (&b.attn_qkv_w, &b.attn_qkv_b, &b.attn_proj_w, &b.mlp_fc_w, &b.mlp_proj_w)
                );
            }
        }
        // Pieces of whole units: 2.5 pieces' worth of f16 values and of 3-byte units.
        for (unit, per_unit) in [(2, 1), (3, 2)] {
            let units = 5 * PACED_ELEMENTS / 2 / per_unit + 1;
            let bytes: Vec<u8> = (0..units * unit).map(|i| i as u8).collect();
            let widen = |piece: &[u8]| -> Vec<f32> {
                assert_eq!(piece.len() % unit, 0, "a piece of whole units");
                piece.chunks(unit).flat_map(|u| vec![u[0] as f32; per_unit]).collect()
            };
            let mut pauses = 0;
            // Read from the file a piece at a time, each byte once: never the tensor's bytes whole.
            let counted = Counted::new(&bytes);
            let range = FileRange { file: &counted, start: 0, len: bytes.len() };
            let paced = at_once(widen_paced("t", range, (unit, per_unit), widen, &mut async || pauses += 1));
            assert_eq!(paced.unwrap(), widen(&bytes));
            assert_eq!(pauses, 3, "unit {unit}");
            let reads = counted.reads.borrow().clone();
            assert_eq!(reads.len(), 3, "unit {unit}: {reads:?}");
            assert!(reads.windows(2).all(|w| w[0].0 + w[0].1 as u64 == w[1].0), "in order, each byte once: {reads:?}");
            assert_eq!(counted.largest_and_total(), (PACED_ELEMENTS / per_unit * unit, bytes.len()));
        }
        // Each piece is checked finite as it is widened: a NaN in the second piece is named by
        // its index in the whole tensor, and no piece after it is widened.
        let bytes = vec![0u8; 2 * PACED_ELEMENTS + 10];
        let bad = PACED_ELEMENTS + 7;
        let widened = std::cell::Cell::new(0);
        let widen = |piece: &[u8]| -> Vec<f32> {
            let from = widened.get();
            widened.set(from + piece.len());
            (from..from + piece.len()).map(|i| if i == bad { f32::NAN } else { 0.0 }).collect()
        };
        let err = at_once(widen_paced("wte", FileRange::whole(&bytes), (1, 1), widen, &mut async || {})).unwrap_err();
        assert!(
            matches!(err, ModelError::NonFiniteWeight { ref name, index, .. } if name == "wte" && index == bad),
            "{err}"
        );
        assert_eq!(widened.get(), 2 * PACED_ELEMENTS);
    }

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
        let err = Weights::from_safetensors(&file, &config).unwrap_err();
        assert!(matches!(err, ModelError::SafetensorsHeader { .. }), "{err}");
        // A header length past the file, or past any bound at all.
        let mut lying = u64::MAX.to_le_bytes().to_vec();
        lying.extend(b"{}");
        assert!(matches!(Weights::from_safetensors(&lying, &config), Err(ModelError::SafetensorsHeader { .. })));
        let mut short = 100u64.to_le_bytes().to_vec();
        short.extend(b"{}");
        assert!(matches!(Weights::from_safetensors(&short, &config), Err(ModelError::Safetensors(_))));
    }

    #[test]
    fn a_header_with_too_many_tensors_is_refused_before_parsing() {
        let config = ModelConfig::tiny(1, 1, 4, 4, 4);
        let err = Weights::from_safetensors(&empty_tensors(MAX_TENSORS + 2, 0), &config).unwrap_err();
        assert!(matches!(err, ModelError::TooManyTensors { .. }), "{err}");
        let err = Weights::from_safetensors(&empty_tensors(MAX_TENSORS, 0), &config).unwrap_err();
        assert!(matches!(err, ModelError::MissingTensor(_)), "{err}");
    }
}
