//! A download plan, made before any weight is fetched: from each safetensors
//! file's header (its first 8 bytes give the header's length, then the JSON
//! header, both read with HTTP Range requests in the page) the bytes to
//! download, the dtypes and shapes, and the memory the weights will take on
//! the GPU and in wasm memory; then [`Plan::check`] against a device's
//! [`Limits`] refuses what will not fit, with a message that says why.
//!
//! Memory as the engine spends it: the weights are read into wasm memory
//! (the CPU reference and the GPU upload read them there) while the
//! downloaded files are still held; there and on the GPU a matrix or table
//! whose file holds 16-bit values stays 16-bit (`model::Matrix`,
//! src/gpu/weights.rs), vectors (norms, biases) and GPT-2's position table
//! are f32. The token table (and an untied LM head) is uploaded in
//! row chunks, so only the other tensors must each fit one storage binding.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

use super::weights::{MAX_HEADER_BYTES, MAX_TENSORS};

/// The bytes that give the header's length.
pub const LENGTH_BYTES: u64 = 8;
/// The largest config.json, tokenizer.json or shard index read whole (a
/// 256k-token tokenizer.json is about 35 MB; the rest are kilobytes).
pub const MAX_SMALL_FILE_BYTES: u64 = 64 << 20;
const MB: f64 = 1e6;

#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    #[error("{file}: shorter than the 8 bytes of a safetensors header length")]
    ShortLength { file: String },
    #[error("{file}: its header claims {bytes} bytes; at most {limit} are read (not a safetensors file, or corrupt)")]
    HeaderTooLong { file: String, bytes: u64, limit: u64 },
    #[error("{file}: the header is not valid safetensors JSON: {message}")]
    HeaderJson { file: String, message: String },
    #[error("{file}: lists more than {limit} tensors")]
    TooManyTensors { file: String, limit: usize },
    #[error("{file}: tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are supported")]
    Dtype { file: String, name: String, dtype: String },
    #[error("{file}: tensor `{name}`: its offsets {begin}..{end} do not hold shape {shape:?} of {dtype}")]
    Offsets { file: String, name: String, begin: u64, end: u64, shape: Vec<u64>, dtype: String },
    #[error("{file} is {size} bytes, but its header describes {wanted}: truncated")]
    Truncated { file: String, size: u64, wanted: u64 },
    #[error("the model has no weight files")]
    Empty,
}

/// Why a model will not be downloaded here.
#[derive(Debug, Error, PartialEq)]
pub enum Refusal {
    #[error(
        "tensor `{name}` takes {} MB on the GPU, but this device allows at most {} MB per GPU buffer: the model cannot run here",
        mb(*bytes), mb(*limit)
    )]
    Binding { name: String, bytes: u64, limit: u64 },
    #[error(
        "the weights take {} MB on the GPU; this device allows about {} MB: the model would not fit",
        mb(*bytes), mb(*limit)
    )]
    GpuMemory { bytes: u64, limit: u64 },
    #[error(
        "loading needs about {} MB of WebAssembly memory (the weights as read, and room for one tensor as it is placed); \
         this page can have at most {} MB",
        mb(*bytes), mb(*limit)
    )]
    WasmMemory { bytes: u64, limit: u64 },
}

fn mb(bytes: u64) -> String {
    mb_text(bytes)
}

/// What a device allows (the adapter's limits as the page requests them, and
/// the wasm memory the page can grow to). The test hook can lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest storage buffer binding (`max_storage_buffer_binding_size`).
    pub max_binding: u64,
    /// The GPU memory the weights may take in all (`None`: not known; only bindings are checked).
    pub gpu_memory: Option<u64>,
    /// The wasm memory the page can grow to (4 GiB for wasm32, less in some browsers).
    pub wasm_memory: u64,
}

impl Default for Limits {
    /// WebGPU's default binding (128 MiB) and wasm32's 4 GiB.
    fn default() -> Self {
        Self { max_binding: 128 << 20, gpu_memory: None, wasm_memory: 4 << 30 }
    }
}

/// One tensor as its header describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub values: u64,
}

impl TensorInfo {
    /// Bytes on the GPU: 16-bit matrices stay 16-bit, everything else is f32.
    pub fn gpu_bytes(&self) -> u64 {
        let per_value = if self.shape.len() >= 2 && self.dtype != "F32" { 2 } else { 4 };
        self.values * per_value
    }

    /// Bytes in wasm memory once read: 16-bit matrices and tables stay
    /// 16-bit (not GPT-2's position table, widened), everything else is f32.
    pub fn wasm_bytes(&self) -> u64 {
        let kept = self.shape.len() >= 2
            && ["F16", "BF16"].contains(&self.dtype.as_str())
            && !self.name.ends_with("wpe.weight");
        self.values * if kept { 2 } else { 4 }
    }

    /// Bytes of the GPU buffer this tensor ends up in: the Llama family's
    /// q, k, v are stacked into one matrix and gate, up into another on
    /// load, so they count 3 and 2 times (an upper bound: k, v may be smaller).
    fn binding_bytes(&self) -> u64 {
        let fused = if ["q_proj.weight", "k_proj.weight", "v_proj.weight"].iter().any(|n| self.name.ends_with(n)) {
            3
        } else if ["gate_proj.weight", "up_proj.weight"].iter().any(|n| self.name.ends_with(n)) {
            2
        } else {
            1
        };
        self.gpu_bytes().saturating_mul(fused)
    }

    /// The token table or an untied LM head: uploaded in chunks of rows.
    fn chunked(&self) -> bool {
        ["wte.weight", "embed_tokens.weight", "lm_head.weight"].iter().any(|n| self.name.ends_with(n))
    }
}

/// One safetensors file as its header describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileHeader {
    pub file: String,
    /// The file's size: 8 + the header + the data.
    pub bytes: u64,
    pub tensors: Vec<TensorInfo>,
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The header's length from the file's first 8 bytes, bounded.
pub fn header_length(file: &str, first: &[u8]) -> Result<u64, PlanError> {
    let length: [u8; 8] = first
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| PlanError::ShortLength { file: file.to_owned() })?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(PlanError::HeaderTooLong { file: file.to_owned(), bytes: length, limit: MAX_HEADER_BYTES });
    }
    Ok(length)
}

impl FileHeader {
    /// Reads the JSON header (the `header_length` bytes after the first 8);
    /// `size`: the file's size when the server said it, to catch truncation.
    pub fn parse(file: &str, header: &[u8], size: Option<u64>) -> Result<Self, PlanError> {
        let err = |message: String| PlanError::HeaderJson { file: file.to_owned(), message };
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| err(e.to_string()))?;
        if map.len() > MAX_TENSORS + 1 {
            return Err(PlanError::TooManyTensors { file: file.to_owned(), limit: MAX_TENSORS });
        }
        let mut tensors = Vec::with_capacity(map.len());
        let mut data_end = 0u64;
        for (name, value) in map {
            if name == "__metadata__" {
                continue;
            }
            let raw: RawTensor = serde_json::from_value(value).map_err(|e| err(format!("tensor `{name}`: {e}")))?;
            let size_of = match raw.dtype.as_str() {
                "F32" => 4,
                "F16" | "BF16" => 2,
                _ => return Err(PlanError::Dtype { file: file.to_owned(), name, dtype: raw.dtype }),
            };
            let values = raw.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
            let (begin, end) = raw.data_offsets;
            let fits = values.and_then(|v| v.checked_mul(size_of)).is_some_and(|b| end.checked_sub(begin) == Some(b));
            let Some(values) = values.filter(|_| fits) else {
                return Err(PlanError::Offsets {
                    file: file.to_owned(),
                    name,
                    begin,
                    end,
                    shape: raw.shape,
                    dtype: raw.dtype,
                });
            };
            data_end = data_end.max(end);
            tensors.push(TensorInfo { name, dtype: raw.dtype, shape: raw.shape, values });
        }
        // data_end ≤ u64::MAX, header.len() ≤ MAX_HEADER_BYTES: saturating is only pedantry.
        let bytes = LENGTH_BYTES.saturating_add(header.len() as u64).saturating_add(data_end);
        if let Some(size) = size.filter(|&s| s < bytes) {
            return Err(PlanError::Truncated { file: file.to_owned(), size, wanted: bytes });
        }
        Ok(Self { file: file.to_owned(), bytes, tensors })
    }
}

/// What a model will cost before it is downloaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every file with its size: the weights' and the small ones (config, tokenizer).
    pub files: Vec<(String, u64)>,
    pub download_bytes: u64,
    pub params: u64,
    /// Values per dtype.
    pub dtypes: BTreeMap<String, u64>,
    pub gpu_bytes: u64,
    /// The largest tensor that must fit one binding, and the GPU bytes of
    /// the buffer it goes into.
    pub largest: Option<(String, u64)>,
    /// Wasm memory while loading: the weights as read (16-bit matrices kept
    /// 16-bit), and the largest of them once more (a tensor read, or its
    /// parts, before it is placed). The files are not in it: they are read a
    /// range at a time from outside it (`model::file_bytes`).
    pub wasm_bytes: u64,
}

impl Plan {
    /// The plan of the weight files `headers` and the other files `small` (name, bytes).
    pub fn new(headers: &[FileHeader], small: &[(String, u64)]) -> Result<Self, PlanError> {
        if headers.is_empty() {
            return Err(PlanError::Empty);
        }
        let mut plan = Plan {
            files: Vec::new(),
            download_bytes: 0,
            params: 0,
            dtypes: BTreeMap::new(),
            gpu_bytes: 0,
            largest: None,
            wasm_bytes: 0,
        };
        let (mut read_bytes, mut largest_read) = (0u64, 0u64);
        for h in headers {
            plan.files.push((h.file.clone(), h.bytes));
            for t in &h.tensors {
                largest_read = largest_read.max(t.wasm_bytes());
                plan.params = plan.params.saturating_add(t.values);
                *plan.dtypes.entry(t.dtype.clone()).or_default() += t.values;
                plan.gpu_bytes = plan.gpu_bytes.saturating_add(t.gpu_bytes());
                read_bytes = read_bytes.saturating_add(t.wasm_bytes());
                let binding = t.binding_bytes();
                if !t.chunked() && plan.largest.as_ref().is_none_or(|(_, b)| binding > *b) {
                    plan.largest = Some((t.name.clone(), binding));
                }
            }
        }
        plan.files.extend(small.iter().cloned());
        plan.download_bytes = plan.files.iter().fold(0u64, |n, (_, b)| n.saturating_add(*b));
        plan.wasm_bytes = read_bytes.saturating_add(largest_read);
        Ok(plan)
    }

    /// The plan of one GGUF file of `bytes`, read before its header: its
    /// memory is bounded from the size alone (quantized values as small as
    /// 4 bits widen to f32 in wasm memory: at most 8 times the file, plus one
    /// tensor's bytes as read, at most the file); the GPU's share is known
    /// once the file is read.
    pub fn gguf(file: &str, bytes: u64) -> Self {
        Plan {
            files: vec![(file.to_owned(), bytes)],
            download_bytes: bytes,
            params: 0,
            dtypes: BTreeMap::new(),
            gpu_bytes: 0,
            largest: None,
            wasm_bytes: bytes.saturating_mul(9),
        }
    }

    /// Refuses what will not fit `limits`: first the wasm memory, then one
    /// binding, then the GPU's memory when it is known.
    pub fn check(&self, limits: &Limits) -> Result<(), Refusal> {
        if self.wasm_bytes > limits.wasm_memory {
            return Err(Refusal::WasmMemory { bytes: self.wasm_bytes, limit: limits.wasm_memory });
        }
        if let Some((name, bytes)) = self.largest.as_ref().filter(|(_, b)| *b > limits.max_binding) {
            return Err(Refusal::Binding { name: name.clone(), bytes: *bytes, limit: limits.max_binding });
        }
        if let Some(limit) = limits.gpu_memory.filter(|&l| self.gpu_bytes > l) {
            return Err(Refusal::GpuMemory { bytes: self.gpu_bytes, limit });
        }
        Ok(())
    }

    /// "124.4M parameters (F16) · 249 MB to download · 249 MB of GPU memory".
    pub fn summary(&self) -> String {
        if self.params == 0 {
            return format!(
                "{} MB to download (one GGUF file: its GPU memory is known once it is read)",
                mb_text(self.download_bytes)
            );
        }
        let dtypes: Vec<&str> = self.dtypes.keys().map(String::as_str).collect();
        format!(
            "{:.1}M parameters ({}) · {} MB to download · {} MB of GPU memory",
            self.params as f64 / 1e6,
            dtypes.join(", "),
            mb_text(self.download_bytes),
            mb_text(self.gpu_bytes)
        )
    }
}

/// Megabytes, with one decimal below 10 MB.
pub fn mb_text(bytes: u64) -> String {
    let mb = bytes as f64 / MB;
    if mb < 10.0 {
        format!("{mb:.1}")
    } else {
        format!("{mb:.0}")
    }
}

/// A size for a person, the one way the page words a byte count (decimal
/// units, one decimal below 10 of the unit): "415 bytes", "262 kB",
/// "1.2 MB", "249 MB", "1.3 GB". `render::text::bytes` adds the exact count.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    match UNITS.iter().find(|&&(size, _)| bytes as f64 >= size) {
        Some(&(size, unit)) => {
            let n = bytes as f64 / size;
            if n < 10.0 {
                format!("{n:.1} {unit}")
            } else {
                format!("{n:.0} {unit}")
            }
        }
        None => format!("{bytes} bytes"),
    }
}

/// What a device allows, in words: "this device allows 134 MB per GPU buffer
/// and 4295 MB of WebAssembly memory" (no buffer limit on the CPU).
pub fn limits_text(limits: &Limits) -> String {
    let gpu = limits.gpu_memory.map(|g| format!(", about {} MB of GPU memory", mb(g))).unwrap_or_default();
    let buffer = if limits.max_binding == u64::MAX {
        String::new()
    } else {
        format!("{} MB per GPU buffer{gpu} and ", mb(limits.max_binding))
    };
    format!("this device allows {buffer}{} MB of WebAssembly memory", mb(limits.wasm_memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file's first bytes: the length, then the header.
    fn header_json(tensors: &[(&str, &str, &[u64])]) -> Vec<u8> {
        let mut at = 0u64;
        let mut entries = vec![r#""__metadata__":{"format":"pt"}"#.to_owned()];
        for (name, dtype, shape) in tensors {
            let size = if *dtype == "F32" { 4 } else { 2 };
            let bytes = shape.iter().product::<u64>() * size;
            entries.push(format!(
                r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{at},{}]}}"#,
                at + bytes
            ));
            at += bytes;
        }
        format!("{{{}}}", entries.join(",")).into_bytes()
    }

    fn file_start(header: &[u8]) -> Vec<u8> {
        [&(header.len() as u64).to_le_bytes()[..], header].concat()
    }

    fn gpt2_small_f16() -> FileHeader {
        let mut tensors: Vec<(String, &str, Vec<u64>)> =
            vec![("wte.weight".into(), "F16", vec![50257, 768]), ("wpe.weight".into(), "F16", vec![1024, 768])];
        for l in 0..12 {
            tensors.push((format!("h.{l}.attn.c_attn.weight"), "F16", vec![768, 2304]));
            tensors.push((format!("h.{l}.attn.c_attn.bias"), "F16", vec![2304]));
            tensors.push((format!("h.{l}.mlp.c_fc.weight"), "F16", vec![768, 3072]));
            tensors.push((format!("h.{l}.mlp.c_proj.weight"), "F16", vec![3072, 768]));
        }
        let refs: Vec<(&str, &str, &[u64])> = tensors.iter().map(|(n, d, s)| (n.as_str(), *d, s.as_slice())).collect();
        FileHeader::parse("model.safetensors", &header_json(&refs), None).unwrap()
    }

    #[test]
    fn header_length_is_bounded_before_anything_is_read() {
        let start = file_start(b"{}");
        assert_eq!(header_length("m", &start).unwrap(), 2);
        assert!(matches!(header_length("m", &start[..7]), Err(PlanError::ShortLength { .. })));
        let huge = u64::MAX.to_le_bytes();
        let err = header_length("m", &huge).unwrap_err();
        assert!(err.to_string().contains("at most 4194304 are read"), "{err}");
    }

    #[test]
    fn plan_counts_bytes_params_and_16_bit_gpu_memory() {
        let h = gpt2_small_f16();
        let weight_values: u64 = 50257 * 768 + 1024 * 768 + 12 * (768 * 2304 + 2304 + 2 * 768 * 3072);
        let header_len = h.bytes - 8 - weight_values * 2;
        assert!(header_len > 0 && header_len < 20_000);
        let plan = Plan::new(&[h], &[("config.json".into(), 700), ("tokenizer.json".into(), 1_300_000)]).unwrap();
        assert_eq!(plan.params, weight_values);
        assert_eq!(plan.dtypes.get("F16"), Some(&weight_values));
        // Matrices stay 16-bit on the GPU; the 12 bias vectors are widened.
        assert_eq!(plan.gpu_bytes, (weight_values - 12 * 2304) * 2 + 12 * 2304 * 4);
        // In wasm memory too, but the position table is widened there; the file is not in it
        // (read by range), only room for its largest tensor, the token table, once more.
        let widened = 12 * 2304 + 1024 * 768;
        assert_eq!(plan.wasm_bytes, (weight_values - widened) * 2 + widened * 4 + 50257 * 768 * 2);
        assert_eq!(plan.download_bytes, 8 + header_len + weight_values * 2 + 700 + 1_300_000);
        // The token table is chunked: the largest single binding is a block's MLP matrix.
        assert_eq!(plan.largest.as_ref().map(|(_, b)| *b), Some(768 * 3072 * 2));
        assert!(plan.summary().starts_with("117.3M parameters (F16) · 236 MB to download"), "{}", plan.summary());
        assert_eq!(plan.check(&Limits::default()), Ok(()));
    }

    #[test]
    fn refusals_name_the_limit_that_is_exceeded() {
        let plan = Plan::new(&[gpt2_small_f16()], &[]).unwrap();
        let wasm = Limits { wasm_memory: 300_000_000, ..Limits::default() };
        assert!(matches!(plan.check(&wasm), Err(Refusal::WasmMemory { .. })));
        let binding = Limits { max_binding: 1 << 20, ..Limits::default() };
        let err = plan.check(&binding).unwrap_err();
        assert!(matches!(err, Refusal::Binding { ref name, .. } if name.contains("mlp")), "{err}");
        assert!(err.to_string().contains("allows at most 1.0 MB per GPU buffer"), "{err}");
        let gpu = Limits { gpu_memory: Some(100_000_000), ..Limits::default() };
        assert!(err_text(&plan, &gpu).contains("this device allows about 100 MB"));
        assert!(limits_text(&gpu).contains("about 100 MB of GPU memory"));
        assert_eq!(
            limits_text(&Limits { max_binding: u64::MAX, ..Limits::default() }),
            "this device allows 4295 MB of WebAssembly memory"
        );
    }

    fn err_text(plan: &Plan, limits: &Limits) -> String {
        plan.check(limits).unwrap_err().to_string()
    }

    #[test]
    fn a_gguf_file_is_planned_from_its_size() {
        let plan = Plan::gguf("m.gguf", 98_362_432);
        assert!(plan.summary().starts_with("98 MB to download (one GGUF file"), "{}", plan.summary());
        assert_eq!(plan.check(&Limits::default()), Ok(()));
        let small = Limits { wasm_memory: 500_000_000, ..Limits::default() };
        assert!(matches!(plan.check(&small), Err(Refusal::WasmMemory { .. })));
    }

    #[test]
    fn sizes_read_in_the_unit_that_fits() {
        assert_eq!(size_text(415), "415 bytes");
        assert_eq!(size_text(261_863), "262 kB");
        assert_eq!(size_text(1_198_824), "1.2 MB");
        assert_eq!(size_text(248_892_888), "249 MB");
        assert_eq!(size_text(1_298_000_000), "1.3 GB");
        assert_eq!(size_text(999), "999 bytes");
    }

    #[test]
    fn shards_add_up() {
        let a = FileHeader::parse("a.safetensors", &header_json(&[("x", "F32", &[4, 4])]), Some(1000)).unwrap();
        let b = FileHeader::parse("b.safetensors", &header_json(&[("norm", "BF16", &[4])]), None).unwrap();
        let plan = Plan::new(&[a.clone(), b.clone()], &[]).unwrap();
        assert_eq!(plan.params, 20);
        assert_eq!(plan.download_bytes, a.bytes + b.bytes);
        assert_eq!(plan.gpu_bytes, 16 * 4 + 4 * 4);
        assert_eq!(plan.dtypes.len(), 2);
        // A Llama gate projection goes into one buffer with up: twice its size.
        let gate = header_json(&[("model.layers.0.mlp.gate_proj.weight", "F16", &[96, 64])]);
        let plan = Plan::new(&[FileHeader::parse("g", &gate, None).unwrap()], &[]).unwrap();
        assert_eq!(plan.largest.map(|(_, b)| b), Some(2 * 96 * 64 * 2));
        assert_eq!(Plan::new(&[], &[]), Err(PlanError::Empty));
    }

    #[test]
    fn bad_headers_are_refused_before_the_weights() {
        let cases: [(&[u8], &str); 6] = [
            (b"{", "not valid safetensors JSON"),
            (br#"{"x":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}"#, "dtype I8"),
            (br#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, "do not hold shape"),
            (br#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#, "do not hold"),
            (br#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[9,1]}}"#, "do not hold"),
            (br#"{"x":{"dtype":"F32","shape":"2"}}"#, "tensor `x`"),
        ];
        for (header, want) in cases {
            let err = FileHeader::parse("m.safetensors", header, None).unwrap_err().to_string();
            assert!(err.contains(want), "{}: {err}", String::from_utf8_lossy(header));
        }
        let truncated = FileHeader::parse("m", &header_json(&[("x", "F32", &[100])]), Some(50)).unwrap_err();
        assert!(matches!(truncated, PlanError::Truncated { .. }), "{truncated}");
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_header_readers() {
        // A fixed xorshift stream: headers mutated byte by byte from a real one.
        let good = header_json(&[("a", "F16", &[3, 5]), ("b", "F32", &[7])]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5_000 {
            let mut bytes = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % bytes.len() as u64) as usize;
                bytes[at] = (x >> 32) as u8;
            }
            let _ = FileHeader::parse("m", &bytes, Some(x % 4096));
            let _ = header_length("m", &bytes);
        }
    }

    #[test]
    fn the_real_fixture_headers_plan_as_their_files_are() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for name in ["gpt2-tiny/model.safetensors", "gpt2-tiny-f16/model.safetensors", "llama-tiny/model.safetensors"] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let len = header_length(name, &bytes).unwrap() as usize;
            let h = FileHeader::parse(name, &bytes[8..8 + len], Some(bytes.len() as u64)).unwrap();
            assert_eq!(h.bytes, bytes.len() as u64, "{name}");
        }
    }
}
