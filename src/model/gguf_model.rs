//! A Llama-family model from a GGUF file (as llama.cpp and ollama keep
//! them): the config from `{arch}.*` metadata, the weights under llama.cpp's
//! tensor names mapped to Hugging Face's (Q and K rows put back in HF's
//! rotate-half order, which llama.cpp's converter permutes for `llama`), and
//! the byte-level BPE tokenizer from `tokenizer.ggml.*`.

use serde_json::{json, Map, Value as Json};

use super::file_bytes::FileBytes;
use super::gguf::{Gguf, GgufError, TensorType, Value};
use super::matrix::{Half, Matrix, Values};
use super::weights::{finite, halves_paced, TensorSource};
use super::{BpeParts, Model, ModelConfig, ModelError, Tensor, TextTokenizer, Weights};

/// The `general.architecture` values that load.
pub const SUPPORTED_ARCHITECTURES: &str = "llama, qwen2";
/// The `tokenizer.ggml.pre` values that load (byte-level BPE pre-tokenizers).
pub const SUPPORTED_PRE: &str = "default, gpt2, smollm, llama-bpe, qwen2";

/// Llama 3's pre-tokenizer split (`llama-bpe` in llama.cpp; the `Split` of its
/// `tokenizer.json`): numbers in groups of up to three digits.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: the same with every digit on its own.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn meta_err(key: &str, problem: impl Into<String>) -> GgufError {
    GgufError::Metadata { key: key.to_owned(), problem: problem.into() }
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Int(n) => json!(n),
        Value::Uint(n) => json!(n),
        Value::Float(x) => json!(x),
        Value::Bool(b) => json!(b),
        Value::String(s) => json!(s),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
    }
}

/// llama.cpp's name of a Hugging Face Llama tensor.
fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let module = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{module}.{kind}"))
}

/// The tensors of a GGUF file under Hugging Face's names and shapes.
struct GgufSource<'a, 'b, F: ?Sized> {
    file: &'a Gguf<'b, F>,
    /// Heads of Q and of K whose rows llama.cpp interleaved (`llama` only).
    permuted: Option<(usize, usize)>,
}

impl<F: FileBytes + ?Sized> GgufSource<'_, '_, F> {
    /// The GGUF name of Hugging Face's `name`, checked to be in the file with `shape`.
    fn checked(&self, name: &str, shape: &[usize]) -> Result<String, ModelError> {
        let gguf = gguf_name(name).unwrap_or_else(|| name.to_owned());
        let info =
            self.file.tensors.get(&gguf).ok_or_else(|| {
                GgufError::Other(format!("the file has no tensor `{gguf}` (Hugging Face's `{name}`)"))
            })?;
        let found: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
        if found != shape {
            return Err(ModelError::TensorShape { name: gguf, expected: shape.to_vec(), found });
        }
        Ok(gguf)
    }
}

/// Undoes llama.cpp's `permute`: within each head of `d_head` rows, GGUF row
/// `2i + s` is Hugging Face's row `s·d_head/2 + i`.
fn unpermute<T: Copy + Default>(data: Vec<T>, heads: usize, row_len: usize) -> Vec<T> {
    let rows = data.len() / row_len.max(1);
    let d_head = rows / heads.max(1);
    let half = d_head / 2;
    let mut out = vec![T::default(); data.len()];
    for h in 0..heads {
        for i in 0..half {
            for s in 0..2 {
                let from = (h * d_head + 2 * i + s) * row_len;
                let to = (h * d_head + s * half + i) * row_len;
                out[to..to + row_len].copy_from_slice(&data[from..from + row_len]);
            }
        }
    }
    out
}

impl<F: FileBytes + ?Sized> TensorSource for GgufSource<'_, '_, F> {
    fn has(&self, name: &str) -> bool {
        gguf_name(name).is_some_and(|n| self.file.tensors.contains_key(&n))
    }

    /// A table's blocks widened a piece at a time (never Q or K, the only
    /// tensors `permuted` touches).
    async fn tensor_paced(
        &self,
        name: &str,
        shape: &[usize],
        pause: &mut impl AsyncFnMut(),
    ) -> Result<Tensor, ModelError> {
        let gguf = self.checked(name, shape)?;
        let (kind, bytes) = self.file.tensor_range(&gguf)?;
        let (per_block, block_bytes) = kind.block();
        let unit = (block_bytes as usize, per_block as usize);
        let widen = |piece: &[u8]| super::gguf_quant::dequantize(kind, piece);
        let data = super::weights::widen_paced(&gguf, bytes, unit, widen, pause).await?;
        Ok(Tensor { shape: shape.to_vec(), data })
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let gguf = self.checked(name, shape)?;
        let data = self.unpermuted(name, shape, self.file.tensor_f32(&gguf)?);
        finite(&gguf, Tensor { shape: shape.to_vec(), data })
    }

    /// F16 and BF16 tensors kept 16-bit; quantized and F32 ones widened to f32.
    async fn matrix_paced(
        &self,
        name: &str,
        shape: &[usize],
        pause: &mut impl AsyncFnMut(),
    ) -> Result<Matrix, ModelError> {
        let gguf = self.checked(name, shape)?;
        let (kind, bytes) = self.file.tensor_range(&gguf)?;
        let format = match kind {
            TensorType::F16 => Half::F16,
            TensorType::BF16 => Half::Bf16,
            _ if self.permuted.is_some()
                && (name.contains("self_attn.q_proj.") || name.contains("self_attn.k_proj.")) =>
            {
                return self.tensor(name, shape).map(Matrix::from);
            }
            _ => return self.tensor_paced(name, shape, pause).await.map(Matrix::from),
        };
        let bits = self.unpermuted(name, shape, halves_paced(&gguf, format, bytes, pause).await?);
        Ok(Matrix { shape: shape.to_vec(), data: Values::Half(format, bits) })
    }
}

impl<F: FileBytes + ?Sized> GgufSource<'_, '_, F> {
    /// `data` in Hugging Face's row order: Q's and K's rows un-interleaved
    /// where llama.cpp interleaved them, any other tensor as it is.
    fn unpermuted<T: Copy + Default>(&self, name: &str, shape: &[usize], data: Vec<T>) -> Vec<T> {
        let Some((n_head, n_kv_head)) = self.permuted else { return data };
        let row_len = if shape.len() == 2 { shape[1] } else { 1 };
        if name.contains("self_attn.q_proj.") {
            unpermute(data, n_head, row_len)
        } else if name.contains("self_attn.k_proj.") {
            unpermute(data, n_kv_head, row_len)
        } else {
            data
        }
    }
}

/// The `config.json` that the file's metadata describes.
fn config<F: FileBytes + ?Sized>(file: &Gguf<'_, F>) -> Result<ModelConfig, GgufError> {
    let arch = file.get("general.architecture").and_then(Value::as_str).unwrap_or("(missing)");
    if !["llama", "qwen2"].contains(&arch) {
        return Err(meta_err(
            "general.architecture",
            format!("is `{arch}`: not supported (supported: {SUPPORTED_ARCHITECTURES})"),
        ));
    }
    if let Some(kind) = file.get(&format!("{arch}.rope.scaling.type")).and_then(Value::as_str) {
        if kind != "none" {
            return Err(meta_err(&format!("{arch}.rope.scaling.type"), format!("is `{kind}`: only none is supported")));
        }
    }
    let mut c = Map::new();
    c.insert("model_type".into(), json!(arch));
    let keys = [
        ("hidden_size", "embedding_length"),
        ("num_hidden_layers", "block_count"),
        ("num_attention_heads", "attention.head_count"),
        ("num_key_value_heads", "attention.head_count_kv"),
        ("intermediate_size", "feed_forward_length"),
        ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
        ("rope_theta", "rope.freq_base"),
        ("max_position_embeddings", "context_length"),
        ("head_dim", "attention.key_length"),
    ];
    for (hf, gguf) in keys {
        if let Some(v) = file.get(&format!("{arch}.{gguf}")) {
            c.insert(hf.into(), to_json(v));
        }
    }
    let vocab = match file.get("tokenizer.ggml.tokens") {
        Some(Value::Array(tokens)) => json!(tokens.len()),
        _ => file.get(&format!("{arch}.vocab_size")).map_or(Json::Null, to_json),
    };
    c.insert("vocab_size".into(), vocab);
    c.insert("tie_word_embeddings".into(), json!(!file.tensors.contains_key("output.weight")));
    c.insert("attention_bias".into(), json!(arch == "llama" && file.tensors.contains_key("blk.0.attn_q.bias")));
    let bytes = serde_json::to_vec(&Json::Object(c)).map_err(|e| GgufError::Other(e.to_string()))?;
    let mut config = ModelConfig::from_json(&bytes).map_err(|e| GgufError::Other(format!("its metadata, as {e}")))?;
    config.rope_freq_factors = rope_freq_factors(file, config.head_dim)?;
    if let Some(rope_dims) = file.get(&format!("{arch}.rope.dimension_count")).and_then(Value::as_u64) {
        if rope_dims != config.head_dim as u64 {
            return Err(meta_err(
                &format!("{arch}.rope.dimension_count"),
                format!(
                    "is {rope_dims}, not head_dim ({}): partial rotary embeddings are not supported",
                    config.head_dim
                ),
            ));
        }
    }
    Ok(config)
}

/// Llama 3.1+'s RoPE scaling as llama.cpp writes it: `rope_freqs.weight`,
/// one divisor per dimension pair (`head_dim / 2`), each finite and positive.
fn rope_freq_factors<F: FileBytes + ?Sized>(
    file: &Gguf<'_, F>,
    head_dim: usize,
) -> Result<Option<Vec<f32>>, GgufError> {
    const NAME: &str = "rope_freqs.weight";
    let Some(info) = file.tensors.get(NAME) else { return Ok(None) };
    if info.dims != [head_dim as u64 / 2] {
        return Err(GgufError::Other(format!(
            "{NAME} has shape {:?}: RoPE frequency factors need one per dimension pair ([{}])",
            info.dims,
            head_dim / 2
        )));
    }
    let factors = file.tensor_f32(NAME)?;
    if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(GgufError::Other(format!(
            "{NAME} holds {bad}: RoPE frequency factors must be finite and positive"
        )));
    }
    Ok(Some(factors))
}

fn strings<'v, F: FileBytes + ?Sized>(file: &'v Gguf<'_, F>, key: &str) -> Result<Vec<&'v str>, GgufError> {
    match file.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| meta_err(key, "holds a value that is not a string")))
            .collect(),
        _ => Err(meta_err(key, "is missing or not an array")),
    }
}

/// The tokenizer the metadata describes, in parts: a `tokenizer.json`
/// document with an empty BPE (its pre-tokenizer, post-processor and
/// decoder), the tokens in id order, the merges and the special tokens' ids.
struct TokenizerParts<'a> {
    shell: Json,
    tokens: Vec<&'a str>,
    merges: Vec<(String, String)>,
    special: Vec<u32>,
}

fn tokenizer_parts<'a, F: FileBytes + ?Sized>(file: &'a Gguf<'_, F>) -> Result<TokenizerParts<'a>, GgufError> {
    let model = file.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("(missing)");
    if model != "gpt2" {
        return Err(meta_err("tokenizer.ggml.model", format!("is `{model}`: only gpt2 (byte-level BPE) is supported")));
    }
    let pre = file.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre_tokenizer = match pre {
        "default" | "gpt2" => byte_level,
        "smollm" => {
            json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]})
        }
        // As the models' own tokenizer.json: a regex split, then bytes to symbols (no second regex).
        "llama-bpe" | "qwen2" => {
            let pattern = if pre == "qwen2" { QWEN2_SPLIT } else { LLAMA3_SPLIT };
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})
        }
        other => {
            return Err(meta_err(
                "tokenizer.ggml.pre",
                format!("is `{other}`: not supported (supported: {SUPPORTED_PRE})"),
            ))
        }
    };
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let merges = strings(file, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) if !b.contains(' ') => Ok((a.to_owned(), b.to_owned())),
            _ => Err(meta_err("tokenizer.ggml.merges", format!("holds `{m}`, not two tokens separated by a space"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let types: Vec<u64> = match file.get("tokenizer.ggml.token_type") {
        Some(Value::Array(items)) => items.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        _ => Vec::new(),
    };
    // Control tokens (type 3) are special: never split, never normalised.
    // (A type list longer than the vocabulary names no more tokens than it has.)
    let special = types.iter().take(tokens.len()).enumerate().filter(|&(_, &ty)| ty == 3).map(|(id, _)| id as u32);
    let special = special.collect();
    let shell = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": {}, "merges": []},
    });
    Ok(TokenizerParts { shell, tokens, merges, special })
}

/// The tokenizer the metadata describes, as a whole `tokenizer.json`
/// document (what tools/make_tokenizers.py builds from the same keys in
/// Python): the parts written into one.
fn tokenizer_json<F: FileBytes + ?Sized>(file: &Gguf<'_, F>) -> Result<Json, GgufError> {
    let TokenizerParts { mut shell, tokens, merges, special } = tokenizer_parts(file)?;
    let vocab: Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| ((*t).to_owned(), json!(i))).collect();
    let added: Vec<Json> = special
        .iter()
        .map(|&id| {
            json!({"id": id, "content": tokens[id as usize], "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    shell["added_tokens"] = Json::Array(added);
    shell["model"]["vocab"] = Json::Object(vocab);
    shell["model"]["merges"] = Json::Array(merges.into_iter().map(|(a, b)| json!([a, b])).collect());
    Ok(shell)
}

/// The tokenizer the metadata describes, built from its parts (see
/// [`TextTokenizer::from_bpe_parts_paced`]), awaiting `pause` between its parts.
async fn gguf_tokenizer_paced<F: FileBytes + ?Sized>(
    file: &Gguf<'_, F>,
    mut pause: impl AsyncFnMut(),
) -> Result<TextTokenizer, ModelError> {
    let TokenizerParts { shell, tokens, merges, special } = tokenizer_parts(file)?;
    let shell = serde_json::to_vec(&shell).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    pause().await;
    TextTokenizer::from_bpe_parts_paced(BpeParts { shell: &shell, tokens: &tokens, merges, special }, pause).await
}

impl Model {
    /// Loads a Llama-family model from the bytes of a GGUF file: config,
    /// weights (dequantized to f32) and tokenizer all come from the file.
    pub fn from_gguf<F: FileBytes + ?Sized>(name: &str, bytes: &F) -> Result<Self, ModelError> {
        crate::pace::at_once(Self::from_gguf_paced(name, bytes, async || {}))
    }

    /// [`Model::from_gguf`] a block of weights at a time, awaiting `pause`
    /// between the parts (the page gives the thread back there).
    pub async fn from_gguf_paced<F: FileBytes + ?Sized>(
        name: &str,
        bytes: &F,
        mut pause: impl AsyncFnMut(),
    ) -> Result<Self, ModelError> {
        Self::from_gguf_erased(name, &bytes, &mut pause).await
    }

    /// [`Model::from_gguf_paced`] with the file and pause types erased: compiled once.
    async fn from_gguf_erased(
        name: &str,
        bytes: &dyn FileBytes,
        pause: &mut dyn crate::pace::Pause,
    ) -> Result<Self, ModelError> {
        let mut pause = async || pause.pause().await;
        let file = Gguf::parse(bytes)?;
        let config = config(&file)?;
        pause().await;
        let tokenizer = gguf_tokenizer_paced(&file, &mut pause).await?;
        pause().await;
        let permuted = (config.architecture == super::Architecture::Llama).then_some((config.n_head, config.n_kv_head));
        let weights = Weights::from_source_paced(&GgufSource { file: &file, permuted }, &config, pause).await?;
        Self::new(name, config, weights, tokenizer)
    }

    /// The tokenizer a GGUF file describes, as `tokenizer.json` bytes.
    pub fn gguf_tokenizer_json(bytes: &[u8]) -> Result<Vec<u8>, ModelError> {
        let json = tokenizer_json(&Gguf::parse(bytes)?)?;
        serde_json::to_vec(&json).map_err(|e| ModelError::Tokenizer(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::gguf_writer::Writer;
    use super::*;

    #[test]
    fn hugging_face_names_map_to_llama_cpp_names() {
        assert_eq!(gguf_name("model.layers.12.self_attn.q_proj.weight").unwrap(), "blk.12.attn_q.weight");
        assert_eq!(gguf_name("model.layers.0.mlp.down_proj.weight").unwrap(), "blk.0.ffn_down.weight");
        assert_eq!(gguf_name("model.layers.3.post_attention_layernorm.weight").unwrap(), "blk.3.ffn_norm.weight");
        assert_eq!(gguf_name("lm_head.weight").unwrap(), "output.weight");
        assert_eq!(gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // One head of 4 rows (pairs 0..2), rows of length 1: HF [a, b, c, d] is
        // stored as [a, c, b, d] (row 2i + s holds HF row s·2 + i).
        assert_eq!(unpermute(vec![0.0, 2.0, 1.0, 3.0], 1, 1), [0.0, 1.0, 2.0, 3.0]);
        // Two heads, rows of length 2.
        let gguf: Vec<f32> = [0, 2, 1, 3, 4, 6, 5, 7].iter().flat_map(|&r| [r as f32, 10.0 + r as f32]).collect();
        let hf: Vec<f32> = (0..8).flat_map(|r| [r as f32, 10.0 + r as f32]).collect();
        assert_eq!(unpermute(gguf, 2, 2), hf);
    }

    fn llama_meta(w: &mut Writer) -> &mut Writer {
        w.kv_str("general.architecture", "llama")
            .kv_u32("llama.embedding_length", 8)
            .kv_u32("llama.block_count", 1)
            .kv_u32("llama.attention.head_count", 2)
            .kv_u32("llama.attention.head_count_kv", 1)
            .kv_u32("llama.feed_forward_length", 16)
            .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
            .kv_f32("llama.rope.freq_base", 10000.0)
            .kv_u32("llama.context_length", 32)
            .kv_str("tokenizer.ggml.model", "gpt2")
            .kv_strs("tokenizer.ggml.tokens", &["a", "b", "ab", "<|end|>"])
            .kv_i32s("tokenizer.ggml.token_type", &[1, 1, 1, 3])
            .kv_strs("tokenizer.ggml.merges", &["a b"])
    }

    /// llama.cpp's `permute`, the inverse of [`unpermute`].
    fn permute(data: &[f32], heads: usize, row_len: usize) -> Vec<f32> {
        let d_head = data.len() / row_len / heads;
        let mut out = vec![0.0; data.len()];
        for h in 0..heads {
            for i in 0..d_head / 2 {
                for s in 0..2 {
                    let (to, from) = ((h * d_head + 2 * i + s) * row_len, (h * d_head + s * d_head / 2 + i) * row_len);
                    out[to..to + row_len].copy_from_slice(&data[from..from + row_len]);
                }
            }
        }
        out
    }

    /// tests/fixtures/llama-tiny (grouped heads, untied, llama3 RoPE scaling)
    /// written as llama.cpp would (Q and K rows permuted, F32), the scaling
    /// as `rope_freqs.weight` (`freq_factors`) when `factors` is given, and
    /// the checkpoint's own config and weights (the scaling dropped when not).
    fn llama_tiny_gguf(factors: Option<&[f32]>) -> (Vec<u8>, ModelConfig, Weights) {
        llama_tiny_gguf_as(factors, false)
    }

    /// [`llama_tiny_gguf`], its matrices and tables F16 when `f16` (the
    /// norms stay F32, as llama.cpp writes them).
    fn llama_tiny_gguf_as(factors: Option<&[f32]>, f16: bool) -> (Vec<u8>, ModelConfig, Weights) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-tiny");
        let st_bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
        let mut config = ModelConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        if factors.is_none() {
            config.rope_scaling = None;
        }
        let weights = Weights::from_safetensors(&st_bytes, &config).unwrap();
        let mut w = Writer::new();
        w.kv_str("general.architecture", "llama")
            .kv_u32("llama.embedding_length", 64)
            .kv_u32("llama.block_count", 2)
            .kv_u32("llama.attention.head_count", 4)
            .kv_u32("llama.attention.head_count_kv", 2)
            .kv_u32("llama.feed_forward_length", 96)
            .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
            .kv_f32("llama.rope.freq_base", 10000.0)
            .kv_u32("llama.rope.dimension_count", 16)
            .kv_u32("llama.context_length", 256)
            .kv_str("tokenizer.ggml.model", "gpt2")
            .kv_str("tokenizer.ggml.pre", "smollm");
        let tokens: Vec<String> = (0..96).map(|i| format!("t{i}")).collect();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        w.kv_strs("tokenizer.ggml.tokens", &tokens).kv_strs("tokenizer.ggml.merges", &[]);
        for (name, view) in st.tensors() {
            let data: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let shape = view.shape();
            let row_len = shape.get(1).copied().unwrap_or(1);
            let data = match name.as_str() {
                n if n.contains("q_proj") => permute(&data, 4, row_len),
                n if n.contains("k_proj") => permute(&data, 2, row_len),
                _ => data,
            };
            let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
            if f16 && shape.len() == 2 {
                let bytes: Vec<u8> = data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
                w.tensor(&gguf_name(&name).unwrap(), &dims, 1, &bytes);
            } else {
                w.f32_tensor(&gguf_name(&name).unwrap(), &dims, &data);
            }
        }
        if let Some(factors) = factors {
            w.f32_tensor("rope_freqs.weight", &[factors.len() as u64], factors);
        }
        (w.finish(), config, weights)
    }

    fn logits(config: &ModelConfig, weights: &Weights) -> Vec<f32> {
        let tokens: Vec<_> = [3u32, 17, 95, 0, 42, 42, 7]
            .iter()
            .map(|&id| super::super::Token { id, text: String::new(), start: 0, end: 0 })
            .collect();
        crate::engine::forward_cpu(config, weights, tokens, crate::engine::Mask::Causal).unwrap().logits.data.into_vec()
    }

    /// Read back without RoPE scaling: the same model, logits equal.
    #[test]
    fn a_gguf_of_a_checkpoint_runs_like_the_checkpoint() {
        let (file, config, weights) = llama_tiny_gguf(None);
        let model = Model::from_gguf("llama-tiny.gguf", &file).unwrap();
        assert_eq!(model.config, config);
        assert_eq!(logits(&model.config, &model.weights), logits(&config, &weights));
        assert_eq!(model.tokenizer.id_to_text(95), "t95");
    }

    /// F16 tensors stay 16-bit, Q's and K's rows un-interleaved as they are:
    /// the matrices equal the checkpoint's rounded to f16 bit for bit, and so
    /// do the logits.
    #[test]
    fn f16_tensors_of_a_gguf_stay_16_bit_and_equal_the_checkpoint_rounded() {
        let (file, config, weights) = llama_tiny_gguf_as(None, true);
        let model = Model::from_gguf("llama-tiny-f16.gguf", &file).unwrap();
        let want = weights.rounded(Half::F16);
        for (a, b) in model.weights.blocks.iter().zip(&want.blocks) {
            assert!(a.matrices().iter().all(|m| m.format() == Some(Half::F16)));
            assert_eq!(a.matrices(), b.matrices());
        }
        assert_eq!((&model.weights.wte, &model.weights.lm_head), (&want.wte, &want.lm_head));
        assert_eq!(logits(&model.config, &model.weights), logits(&config, &want));
    }

    fn model_vocab(file: &[u8]) -> usize {
        strings(&Gguf::parse(file).unwrap(), "tokenizer.ggml.tokens").unwrap().len()
    }

    /// Read in paces (as the page reads a downloaded model): a pause after
    /// the tokenizer and after each block's large matrices, and the same
    /// model as at once.
    #[test]
    fn a_paced_read_pauses_between_blocks_and_gives_the_same_model() {
        let (file, config, _) = llama_tiny_gguf(None);
        let whole = Model::from_gguf("llama-tiny.gguf", &file).unwrap();
        let mut pauses = 0;
        let paced =
            crate::pace::at_once(Model::from_gguf_paced("llama-tiny.gguf", &file, async || pauses += 1)).unwrap();
        // The tokenizer's (after the header; its parts; before each 8,192 tokens of the vocabulary
        // map; before the BPE model; at its end), each block's Q; K and V; out; gate; up;
        // gate and up fused; down, the LM head if untied and the token table (one piece each here).
        let tokenizer = 4 + model_vocab(&file).div_ceil(8192);
        assert_eq!(pauses, tokenizer + 7 * config.n_layer + 1 + usize::from(!config.tie_word_embeddings));
        assert_eq!(paced.config, whole.config);
        assert_eq!(logits(&paced.config, &paced.weights), logits(&whole.config, &whole.weights));
        assert_eq!(paced.weights.blocks.len(), config.n_layer);
        for (a, b) in paced.weights.blocks.iter().zip(&whole.weights.blocks) {
            assert_eq!((&a.attn_qkv_w, &a.mlp_fc_w, &a.mlp_proj_w), (&b.attn_qkv_w, &b.mlp_fc_w, &b.mlp_proj_w));
        }
    }

    /// Llama 3.1+'s scaling as llama.cpp's converter writes it (each pair's
    /// unscaled frequency over its scaled one) runs like the checkpoint's
    /// `rope_scaling`; a factor of the wrong count or value is refused.
    #[test]
    fn rope_freqs_in_a_gguf_scale_rope_as_the_checkpoint_does() {
        let (_, scaled, _) = llama_tiny_gguf(Some(&[1.0]));
        assert!(scaled.rope_scaling.is_some(), "the fixture has llama3 scaling");
        let plain = ModelConfig { rope_scaling: None, ..scaled.clone() }.rope_inv_freq();
        let factors: Vec<f32> = plain.iter().zip(scaled.rope_inv_freq()).map(|(p, s)| p / s).collect();
        assert!(factors.iter().any(|&f| f > 1.5), "the scaling changes some frequencies: {factors:?}");
        let (file, config, weights) = llama_tiny_gguf(Some(&factors));
        let model = Model::from_gguf("llama-tiny.gguf", &file).unwrap();
        assert_eq!(model.config.rope_freq_factors.as_deref(), Some(&factors[..]));
        for (ours, want) in model.config.rope_inv_freq().iter().zip(config.rope_inv_freq()) {
            assert!((ours - want).abs() <= 1e-6 * want, "{ours} vs {want}");
        }
        let (ours, want) = (logits(&model.config, &model.weights), logits(&config, &weights));
        let worst = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "logits differ by {worst}");
        assert!(
            logits(&ModelConfig { rope_freq_factors: None, ..model.config.clone() }, &model.weights)
                .iter()
                .zip(&want)
                .any(|(a, b)| (a - b).abs() > 1e-3),
            "without the factors the logits differ: the test can tell"
        );
        for (bad, says) in [
            (vec![1.0; 7], "rope_freqs.weight has shape [7]: RoPE frequency factors need one per dimension pair ([8])"),
            (vec![0.0; 8], "rope_freqs.weight holds 0: RoPE frequency factors must be finite and positive"),
        ] {
            let (file, _, _) = llama_tiny_gguf(Some(&bad));
            let err = Model::from_gguf("bad.gguf", &file).err().expect("refused").to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    /// A whole tiny Llama in GGUF: F32 norms, a Q8_0 token table, Q4_0 and
    /// Q4_1 projections, one head of 32 (the quantized rows fill blocks of 32).
    fn tiny_quantized_llama() -> Vec<u8> {
        let mut w = Writer::new();
        w.kv_str("general.architecture", "llama")
            .kv_u32("llama.embedding_length", 32)
            .kv_u32("llama.block_count", 1)
            .kv_u32("llama.attention.head_count", 1)
            .kv_u32("llama.feed_forward_length", 32)
            .kv_u32("llama.context_length", 16)
            .kv_str("tokenizer.ggml.model", "gpt2")
            .kv_strs("tokenizer.ggml.tokens", &["a", "b", "ab", "<|end|>"])
            .kv_i32s("tokenizer.ggml.token_type", &[1, 1, 1, 3])
            .kv_strs("tokenizer.ggml.merges", &["a b"]);
        // Blocks with a small f16 scale (0x2c00 = 1/16) and varied nibbles.
        let blocks = |n: usize, size: usize, scales: usize| -> Vec<u8> {
            (0..n * size)
                .map(|i| if i % size < 2 * scales { [0x00, 0x2c][i % 2] } else { (i * 37 % 251) as u8 })
                .collect()
        };
        w.tensor("token_embd.weight", &[32, 4], 8, &blocks(4, 34, 1));
        for name in ["output_norm", "blk.0.attn_norm", "blk.0.ffn_norm"] {
            w.f32_tensor(&format!("{name}.weight"), &[32], &[1.0; 32]);
        }
        for (name, kind, size, scales) in
            [("attn_q", 2, 18, 1), ("attn_k", 3, 20, 2), ("attn_v", 2, 18, 1), ("attn_output", 3, 20, 2)]
        {
            w.tensor(&format!("blk.0.{name}.weight"), &[32, 32], kind, &blocks(32, size, scales));
        }
        for (name, kind, size) in [("ffn_gate", 8, 34), ("ffn_up", 2, 18), ("ffn_down", 3, 20)] {
            w.tensor(
                &format!("blk.0.{name}.weight"),
                &[32, 32],
                kind,
                &blocks(32, size, if size == 20 { 2 } else { 1 }),
            );
        }
        w.finish()
    }

    /// Damaged files (bits flipped, counts and sizes set to extremes, cut
    /// short) are refused with an error or load and run, never panic: a
    /// mutation test over 3,000 variants of a valid quantized file.
    #[test]
    fn damaged_files_never_panic() {
        let good = tiny_quantized_llama();
        let model = Model::from_gguf("tiny", &good).unwrap();
        assert_eq!((model.config.n_embd, model.config.n_kv_head, model.tokenizer.vocab_size()), (32, 1, 4));
        let trace = model.trace_ids(&[0, 3, 2], crate::engine::Mask::Causal).unwrap();
        assert!(trace.logits.data.iter().all(|v| v.is_finite()));
        let mut rng = crate::engine::sampling::Rng::new(99);
        let extremes: [u64; 5] = [0, 1, u32::MAX as u64, u64::MAX, 1 << 40];
        for case in 0..3000 {
            let mut bytes = good.clone();
            let at = (rng.next_u64() % bytes.len() as u64) as usize;
            match case % 3 {
                0 => bytes[at] ^= 1 << (rng.next_u64() % 8),
                1 => {
                    let value = extremes[(rng.next_u64() % 5) as usize].to_le_bytes();
                    let end = (at + 8).min(bytes.len());
                    bytes[at..end].copy_from_slice(&value[..end - at]);
                }
                _ => bytes.truncate(at),
            }
            // Loads or is refused with a message; the forward of what loads runs.
            if let Ok(model) = Model::from_gguf("mutant", &bytes) {
                let _ = model.trace_ids(&[0, 1], crate::engine::Mask::Causal);
            }
        }
    }

    #[test]
    fn architecture_tokenizer_and_rope_problems_are_named() {
        let config_err = |edit: &dyn Fn(&mut Writer)| {
            let mut w = Writer::new();
            edit(&mut w);
            let bytes = w.finish();
            Model::from_gguf("t", &bytes).err().unwrap().to_string()
        };
        let err = config_err(&|w| {
            w.kv_str("general.architecture", "gemma3");
        });
        assert_eq!(err, "GGUF metadata `general.architecture` is `gemma3`: not supported (supported: llama, qwen2)");
        let err = config_err(&|w| {
            llama_meta(w).kv_str("llama.rope.scaling.type", "yarn");
        });
        assert_eq!(err, "GGUF metadata `llama.rope.scaling.type` is `yarn`: only none is supported");
        let err = config_err(&|w| {
            llama_meta(w).kv_u32("llama.rope.dimension_count", 2);
        });
        assert!(err.contains("partial rotary embeddings are not supported"), "{err}");
        let mut w = Writer::new();
        llama_meta(&mut w);
        let err = Model::from_gguf("t", &w.finish()).err().unwrap().to_string();
        assert_eq!(err, "GGUF: the file has no tensor `blk.0.attn_q.weight` (Hugging Face's `model.layers.0.self_attn.q_proj.weight`)");
        let err = config_err(&|w| {
            llama_meta(w).kv_str("tokenizer.ggml.pre", "deepseek-coder");
        });
        assert!(
            err.contains(
                "`tokenizer.ggml.pre` is `deepseek-coder`: not supported (supported: default, gpt2, smollm, llama-bpe, qwen2)"
            ),
            "{err}"
        );
    }

    /// Llama 3 keeps up to three digits together before BPE, Qwen2 splits
    /// every digit, GPT-2 keeps a run of digits: seen through a vocabulary
    /// whose merges would join "12", "123" and "45" if the split allows.
    #[test]
    fn digit_splitting_follows_each_pre_tokenizer() {
        let encode = |pre: &str, text: &str| -> Vec<String> {
            let mut w = Writer::new();
            w.kv_str("tokenizer.ggml.model", "gpt2")
                .kv_str("tokenizer.ggml.pre", pre)
                .kv_strs("tokenizer.ggml.tokens", &["1", "2", "3", "4", "5", "12", "123", "45", "Ġ", "a", "Ġa"])
                .kv_i32s("tokenizer.ggml.token_type", &[1; 11])
                .kv_strs("tokenizer.ggml.merges", &["1 2", "12 3", "4 5", "Ġ a"]);
            let bytes = w.finish();
            let file = Gguf::parse(&bytes).unwrap();
            let json = serde_json::to_vec(&tokenizer_json(&file).unwrap()).unwrap();
            let tok = TextTokenizer::from_bytes(&json).unwrap();
            tok.encode(text).unwrap().into_iter().map(|t| t.text).collect()
        };
        assert_eq!(encode("llama-bpe", "12345"), ["123", "45"]);
        assert_eq!(encode("qwen2", "12345"), ["1", "2", "3", "4", "5"]);
        assert_eq!(encode("gpt2", "12345"), ["123", "45"]);
        assert_eq!(encode("llama-bpe", "a a"), ["a", " a"]);
        assert_eq!(encode("qwen2", "a a"), ["a", " a"]);
    }

    /// The tokenizer built from its parts (what the page loads) is the one
    /// the whole `tokenizer.json` document parses to: the same ids, spans
    /// and special tokens on hostile and ordinary text, for a small
    /// vocabulary with a control token and, when `tools/get_smollm2.py`
    /// fetched it, SmolLM2's (also timed: the parts against the document).
    #[test]
    fn the_tokenizer_from_parts_is_the_document_s() {
        let mut w = Writer::new();
        w.kv_str("tokenizer.ggml.model", "gpt2")
            .kv_str("tokenizer.ggml.pre", "smollm")
            .kv_strs("tokenizer.ggml.tokens", &["<|end|>", "1", "2", "12", "Ġ", "a", "Ġa", "b", "ab", "Ġab"])
            .kv_i32s("tokenizer.ggml.token_type", &[3, 1, 1, 1, 1, 1, 1, 1, 1, 1])
            .kv_strs("tokenizer.ggml.merges", &["1 2", "Ġ a", "a b", "Ġa b"]);
        let small = w.finish();
        // A hostile file: more token types than tokens, control tokens past the vocabulary.
        let mut w = Writer::new();
        w.kv_str("tokenizer.ggml.model", "gpt2")
            .kv_strs("tokenizer.ggml.tokens", &["a", "b", "ab"])
            .kv_i32s("tokenizer.ggml.token_type", &[1, 1, 3, 3, 3])
            .kv_strs("tokenizer.ggml.merges", &["a b"]);
        let longer_types = w.finish();
        let smollm2 =
            std::path::Path::new(env!("HOME")).join(".cache/attnscope/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        let texts = [
            "ab ab12a<|end|> b",
            "The capital of France is Paris.<|im_start|>user\nHi<|im_end|>",
            "naïve 猫 — 12345 \t\n  spaces",
            "",
        ];
        for bytes in [Some(small), Some(longer_types), std::fs::read(&smollm2).ok()].into_iter().flatten() {
            let file = Gguf::parse(&bytes).unwrap();
            let t0 = std::time::Instant::now();
            let json = serde_json::to_vec(&tokenizer_json(&file).unwrap()).unwrap();
            let whole = TextTokenizer::from_bytes(&json).unwrap();
            let t1 = std::time::Instant::now();
            let parts = crate::pace::at_once(gguf_tokenizer_paced(&file, async || {})).unwrap();
            let t2 = std::time::Instant::now();
            println!("tokenizer of {} bytes: the document {:?}, the parts {:?}", bytes.len(), t1 - t0, t2 - t1);
            for text in texts {
                assert_eq!(parts.encode(text).unwrap(), whole.encode(text).unwrap(), "{text:?}");
            }
            let vocab = whole.vocab_size();
            assert_eq!(parts.vocab_size(), vocab);
            for id in [0, 1, vocab as u32 / 2, vocab as u32 - 1] {
                assert_eq!(parts.id_to_text(id), whole.id_to_text(id));
                assert_eq!(parts.decode(&[id]), whole.decode(&[id]));
            }
        }
    }
}
