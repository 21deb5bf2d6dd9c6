//! A GGUF reader (llama.cpp's file format, versions 2 and 3): the metadata
//! and the tensor directory, read by range from the file's bytes
//! ([`FileBytes`]: a slice, or in the page the downloaded file outside
//! WebAssembly memory), every count and size bounded by the bytes that are
//! really there before anything is allocated for it. Tensors of types F32, F16,
//! BF16, Q8_0, Q4_0 and Q4_1 are dequantized to f32 ([`super::gguf_quant`]);
//! turning the file into a model is [`super::gguf_model`].
//!
//! Why not a crate: the GGUF parsers on crates.io (gguf-rs, gguf-rs-lib, …)
//! read from a path or `Read` rather than a slice, reserve vectors from the
//! header's counts before reading them, and leave dequantization to the
//! caller; what we need is this file plus the block formats.

use std::collections::BTreeMap;

use thiserror::Error;

use super::file_bytes::{read_vec, FileBytes, FileRange};

/// The most metadata entries, tensors, array elements and dimensions read.
pub const MAX_KV: u64 = 1 << 16;
pub const MAX_TENSORS: u64 = 1 << 14;
pub const MAX_ARRAY: u64 = 1 << 22;
pub const MAX_DIMS: u32 = 4;
/// The longest string (a key, a tensor name, a token, a chat template).
pub const MAX_STRING: u64 = 1 << 24;
/// The most bytes of header (metadata and tensor directory) read: a
/// tokenizer of 128k tokens and 280k merges is about 10 MB of it.
pub const MAX_HEADER: u64 = 1 << 27;
/// The header is read in a first piece of this size, then in pieces four
/// times as large until it parses (or [`MAX_HEADER`] is passed).
const FIRST_READ: u64 = 1 << 20;

#[derive(Debug, Error, PartialEq)]
pub enum GgufError {
    #[error("not a GGUF file: it starts with {0:02x?}, not \"GGUF\"")]
    Magic(Vec<u8>),
    #[error("GGUF version {0} is not supported (supported: 2 and 3)")]
    Version(u32),
    #[error("the GGUF file is truncated: it ends inside {0}")]
    Truncated(String),
    #[error("the GGUF file lists {count} {what}; at most {limit} are read")]
    TooMany { what: &'static str, count: u64, limit: u64 },
    #[error("the GGUF metadata value of `{key}` has unknown type {kind}")]
    ValueType { key: String, kind: u32 },
    #[error("GGUF tensor `{name}` has type {kind}; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1")]
    TensorType { name: String, kind: String },
    #[error("GGUF tensor `{name}`: {problem}")]
    Tensor { name: String, problem: String },
    #[error("GGUF metadata `{key}` {problem}")]
    Metadata { key: String, problem: String },
    #[error("GGUF: {0}")]
    Other(String),
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Uint(n) => Some(n),
            Self::Int(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Float(x) => Some(x),
            Self::Uint(n) => Some(n as f64),
            Self::Int(n) => Some(n as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The ggml tensor types this reader dequantizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
}

impl TensorType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block).
    pub fn block(self) -> (u64, u64) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q8_0 => (32, 34),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
        }
    }
}

/// ggml's names of the types it has, for messages about the ones we lack.
fn type_name(id: u32) -> String {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
        "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(id as usize).map_or_else(|| format!("unknown ({id})"), |n| (*n).to_owned())
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Dimensions as GGUF lists them, fastest first (`ne[0]` is a row's length).
    pub dims: Vec<u64>,
    pub kind: TensorType,
    /// Where its bytes are in the file, checked to be inside it.
    pub start: usize,
    pub len: usize,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file: metadata and tensor directory, over the file read by range.
pub struct Gguf<'a, F: ?Sized = [u8]> {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: BTreeMap<String, TensorInfo>,
    file: &'a F,
}

impl<F: ?Sized> std::fmt::Debug for Gguf<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf").field("version", &self.version).field("tensors", &self.tensors.len()).finish()
    }
}

/// What the header holds.
struct Header {
    version: u32,
    metadata: BTreeMap<String, Value>,
    tensors: BTreeMap<String, TensorInfo>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let end = usize::try_from(n).ok().and_then(|n| self.at.checked_add(n));
        match end.and_then(|end| self.bytes.get(self.at..end)) {
            Some(slice) => {
                self.at += slice.len();
                Ok(slice)
            }
            None => Err(GgufError::Truncated(what())),
        }
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let slice = self.take(N as u64, what)?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count, checked against its bound and against the bytes left
    /// (each counted item takes at least `min_bytes`).
    fn count(&mut self, what: &'static str, limit: u64, min_bytes: u64) -> Result<u64, GgufError> {
        let count = self.u64(&|| format!("the number of {what}"))?;
        let left = (self.bytes.len() - self.at) as u64;
        if count > limit {
            return Err(GgufError::TooMany { what, count, limit });
        }
        if count.saturating_mul(min_bytes) > left {
            return Err(GgufError::Truncated(format!("its {count} {what}")));
        }
        Ok(count)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(GgufError::TooMany { what: "bytes in one string", count: len, limit: MAX_STRING });
        }
        let bytes = self.take(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, key: &str, kind: u32, depth: u32) -> Result<Value, GgufError> {
        let what = || format!("the value of `{key}`");
        Ok(match kind {
            0 => Value::Uint(self.array::<1>(&what)?[0].into()),
            1 => Value::Int((self.array::<1>(&what)?[0] as i8).into()),
            2 => Value::Uint(u16::from_le_bytes(self.array(&what)?).into()),
            3 => Value::Int(i16::from_le_bytes(self.array(&what)?).into()),
            4 => Value::Uint(self.u32(&what)?.into()),
            5 => Value::Int(i32::from_le_bytes(self.array(&what)?).into()),
            6 => Value::Float(f32::from_le_bytes(self.array(&what)?).into()),
            7 => Value::Bool(self.array::<1>(&what)?[0] != 0),
            8 => Value::String(self.string(&what)?),
            9 if depth == 0 => {
                let inner = self.u32(&what)?;
                let min_bytes = match inner {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    _ => return Err(GgufError::ValueType { key: key.to_owned(), kind: inner }),
                };
                let count = self.count("array elements", MAX_ARRAY, min_bytes)?;
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(key, inner, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::Uint(self.u64(&what)?),
            11 => Value::Int(i64::from_le_bytes(self.array(&what)?)),
            12 => Value::Float(f64::from_le_bytes(self.array(&what)?)),
            other => return Err(GgufError::ValueType { key: key.to_owned(), kind: other }),
        })
    }
}

impl<'a, F: FileBytes + ?Sized> Gguf<'a, F> {
    /// Parses the header, metadata and tensor directory; tensor bytes are
    /// read on demand. The header is read from the start of the file a piece
    /// at a time, each four times the last, until it parses whole: its length
    /// is known only once it is parsed.
    pub fn parse(file: &'a F) -> Result<Self, GgufError> {
        let size = file.size();
        let mut read = size.min(FIRST_READ);
        loop {
            let prefix = read_vec(file, 0, read).ok_or_else(|| GgufError::Truncated("its header".into()))?;
            match parse_header(&prefix, size) {
                Ok(Header { version, metadata, tensors }) => return Ok(Self { version, metadata, tensors, file }),
                Err(GgufError::Truncated(_)) if read < size && read < MAX_HEADER => {
                    read = size.min(MAX_HEADER).min(read.saturating_mul(4));
                }
                Err(GgufError::Truncated(what)) if read < size => {
                    return Err(GgufError::Other(format!(
                        "its header runs past {} MiB (it was still inside {what}); at most that is read",
                        MAX_HEADER >> 20
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A tensor's values as f32 (dequantized), in GGUF's order.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let (kind, bytes) = self.tensor_bytes(name)?;
        Ok(super::gguf_quant::dequantize(kind, &bytes))
    }

    /// Tensor `name`'s type and where its bytes (a whole number of its
    /// blocks) lie in the file: checked against the file's size when the
    /// header was parsed.
    pub fn tensor_range(&self, name: &str) -> Result<(TensorType, FileRange<'a, F>), GgufError> {
        let info = self.tensors.get(name).ok_or_else(|| GgufError::Other(format!("no tensor `{name}`")))?;
        Ok((info.kind, FileRange { file: self.file, start: info.start as u64, len: info.len }))
    }

    /// Tensor `name`'s type and bytes (a whole number of its blocks), read from the file.
    pub fn tensor_bytes(&self, name: &str) -> Result<(TensorType, Vec<u8>), GgufError> {
        let (kind, range) = self.tensor_range(name)?;
        let bytes = read_vec(range.file, range.start, range.len as u64)
            .ok_or_else(|| GgufError::Truncated(format!("tensor `{name}`")))?;
        Ok((kind, bytes))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
}

/// The header of a file of `size` bytes from its first bytes, `bytes`:
/// [`GgufError::Truncated`] where `bytes` ends inside it.
fn parse_header(bytes: &[u8], size: u64) -> Result<Header, GgufError> {
    let mut c = Cursor { bytes, at: 0 };
    let magic = c.array::<4>(&|| "its first 4 bytes".into()).map_err(|_| GgufError::Magic(bytes.to_vec()))?;
    if &magic != b"GGUF" {
        return Err(GgufError::Magic(magic.to_vec()));
    }
    let version = c.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    // A tensor entry takes at least 8 + 4 + 8 + 4 + 8 bytes, a metadata entry 8 + 4 + 1.
    let n_tensors = c.u64(&|| "the number of tensors".into())?;
    if n_tensors > MAX_TENSORS {
        return Err(GgufError::TooMany { what: "tensors", count: n_tensors, limit: MAX_TENSORS });
    }
    let n_kv = c.count("metadata entries", MAX_KV, 13)?;
    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = c.string(&|| format!("the key of metadata entry {i}"))?;
        let kind = c.u32(&|| format!("the type of `{key}`"))?;
        let value = c.value(&key, kind, 0)?;
        metadata.insert(key, value);
    }
    if n_tensors.saturating_mul(32) > (bytes.len() - c.at) as u64 {
        return Err(GgufError::Truncated(format!("its {n_tensors} tensor entries")));
    }
    let mut entries = Vec::new();
    for i in 0..n_tensors {
        let name = c.string(&|| format!("the name of tensor {i}"))?;
        let n_dims = c.u32(&|| format!("the dimensions of `{name}`"))?;
        if !(1..=MAX_DIMS).contains(&n_dims) {
            return Err(GgufError::Tensor { name, problem: format!("has {n_dims} dimensions (1 to 4 are read)") });
        }
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            dims.push(c.u64(&|| format!("the dimensions of `{name}`"))?);
        }
        let kind = c.u32(&|| format!("the type of `{name}`"))?;
        let offset = c.u64(&|| format!("the offset of `{name}`"))?;
        entries.push((name, dims, kind, offset));
    }
    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= 1 << 16 => a,
            _ => {
                return Err(GgufError::Metadata {
                    key: "general.alignment".into(),
                    problem: format!("must be a power of two up to 65536, found {v:?}"),
                })
            }
        },
    };
    let data_start = (c.at as u64).next_multiple_of(alignment);
    let mut tensors = BTreeMap::new();
    for (name, dims, kind_id, offset) in entries {
        let info = locate(&name, dims, kind_id, offset, data_start, size)?;
        if tensors.insert(name.clone(), info).is_some() {
            return Err(GgufError::Tensor { name, problem: "is listed twice".into() });
        }
    }
    Ok(Header { version, metadata, tensors })
}

/// Checks a tensor's type, shape and byte range against the file.
fn locate(
    name: &str,
    dims: Vec<u64>,
    kind_id: u32,
    offset: u64,
    data: u64,
    file: u64,
) -> Result<TensorInfo, GgufError> {
    let problem = |p: String| GgufError::Tensor { name: name.to_owned(), problem: p };
    let kind = TensorType::from_id(kind_id)
        .ok_or_else(|| GgufError::TensorType { name: name.to_owned(), kind: type_name(kind_id) })?;
    let elements = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    let elements = elements
        .filter(|&n| n <= 1 << 34)
        .ok_or_else(|| problem(format!("has dimensions {dims:?}: too many elements")))?;
    let (block, block_bytes) = kind.block();
    if !dims[0].is_multiple_of(block) {
        return Err(problem(format!("rows of {} elements do not fill {kind:?} blocks of {block}", dims[0])));
    }
    let len = elements / block * block_bytes;
    let start = data.checked_add(offset).filter(|s| s.checked_add(len).is_some_and(|end| end <= file));
    let start =
        start.ok_or_else(|| problem(format!("its {len} bytes at offset {offset} run past the end of the file")))?;
    Ok(TensorInfo { dims, kind, start: start as usize, len: len as usize })
}

#[cfg(test)]
mod tests {
    use super::super::gguf_writer::Writer;
    use super::*;

    fn small() -> Vec<u8> {
        Writer::new()
            .kv_str("general.architecture", "llama")
            .kv_u32("llama.block_count", 2)
            .kv_strs("tokenizer.ggml.tokens", &["a", "b"])
            .f32_tensor("t", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .finish()
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let bytes = small();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.get("general.architecture").and_then(Value::as_str), Some("llama"));
        assert_eq!(g.get("llama.block_count").and_then(Value::as_u64), Some(2));
        let tokens = g.get("tokenizer.ggml.tokens").unwrap();
        assert_eq!(tokens, &Value::Array(vec![Value::String("a".into()), Value::String("b".into())]));
        assert_eq!(g.tensors["t"].dims, [2, 3]);
        assert_eq!(g.tensor_f32("t").unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    /// A header longer than the first read (here 3 MB of tokens) is read in
    /// growing pieces from the file's start, and a tensor's bytes alone after it.
    #[test]
    fn a_long_header_is_read_in_growing_pieces() {
        let tokens: Vec<String> = (0..300_000).map(|i| format!("token{i}")).collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let bytes = Writer::new().kv_strs("tokenizer.ggml.tokens", &refs).f32_tensor("t", &[2], &[1.0, 2.0]).finish();
        assert!(bytes.len() as u64 > 4 * FIRST_READ);
        let counted = super::super::file_bytes::tests::Counted::new(&bytes);
        let g = Gguf::parse(&counted).unwrap();
        let reads = counted.reads.borrow().clone();
        let sizes: Vec<usize> = reads.iter().map(|r| r.1).collect();
        let first = FIRST_READ as usize;
        assert_eq!(sizes, [first, 4 * first, bytes.len()], "each four times the last, at most the file");
        assert_eq!(g.tensor_f32("t").unwrap(), [1.0, 2.0]);
        assert_eq!(counted.reads.borrow().last(), Some(&(g.tensors["t"].start as u64, 8)));
        // Cut inside the header, past the first read: truncated, as from a slice.
        let cut = &bytes[..bytes.len() / 2];
        assert!(Gguf::parse(cut).unwrap_err().to_string().contains("truncated"));
    }

    /// Every prefix of a valid file is refused with a message, never a panic.
    #[test]
    fn every_truncation_is_an_error() {
        let bytes = small();
        // (The last 8 bytes pad the tensor data to its alignment.)
        for end in 0..bytes.len() - 8 {
            let text = Gguf::parse(&bytes[..end]).unwrap_err().to_string();
            let named = ["truncated", "not a GGUF file", "run past the end of the file"];
            assert!(named.iter().any(|n| text.contains(n)), "{end}: {text}");
        }
    }

    #[test]
    fn hostile_headers_are_refused_with_their_message() {
        let header = |version: u32, n_tensors: u64, n_kv: u64| {
            let mut b = b"GGUF".to_vec();
            b.extend(version.to_le_bytes());
            b.extend(n_tensors.to_le_bytes());
            b.extend(n_kv.to_le_bytes());
            b
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GGML\x03\0\0\0".to_vec(), "not a GGUF file: it starts with [47, 47, 4d, 4c], not \"GGUF\""),
            (header(1, 0, 0), "GGUF version 1 is not supported (supported: 2 and 3)"),
            (header(3, u64::MAX, 0), "the GGUF file lists 18446744073709551615 tensors; at most 16384 are read"),
            (header(3, 0, 1 << 40), "the GGUF file lists 1099511627776 metadata entries; at most 65536 are read"),
            (header(3, 0, 1000), "the GGUF file is truncated: it ends inside its 1000 metadata entries"),
            (header(3, 5, 0), "the GGUF file is truncated: it ends inside its 5 tensor entries"),
        ];
        for (bytes, want) in cases {
            assert_eq!(Gguf::parse(&bytes).unwrap_err().to_string(), want);
        }
        // A string or an array longer than the file.
        let w = Writer::new().kv_raw("k", 8, &(1u64 << 40).to_le_bytes()).finish();
        assert_eq!(
            Gguf::parse(&w).unwrap_err().to_string(),
            "the GGUF file lists 1099511627776 bytes in one string; at most 16777216 are read"
        );
        let mut array = 4u32.to_le_bytes().to_vec();
        array.extend(1_000_000u64.to_le_bytes());
        let w = Writer::new().kv_raw("k", 9, &array).finish();
        assert_eq!(
            Gguf::parse(&w).unwrap_err().to_string(),
            "the GGUF file is truncated: it ends inside its 1000000 array elements"
        );
        let w = Writer::new().kv_raw("k", 13, &[0; 8]).finish();
        assert_eq!(Gguf::parse(&w).unwrap_err().to_string(), "the GGUF metadata value of `k` has unknown type 13");
        let mut nested = 9u32.to_le_bytes().to_vec();
        nested.extend(1u64.to_le_bytes());
        let w = Writer::new().kv_raw("k", 9, &nested).finish();
        assert_eq!(Gguf::parse(&w).unwrap_err().to_string(), "the GGUF metadata value of `k` has unknown type 9");
    }

    #[test]
    fn hostile_tensor_entries_are_refused_with_their_message() {
        let one = |dims: &[u64], kind: u32, bytes: &[u8]| {
            Gguf::parse(&Writer::new().tensor("w", dims, kind, bytes).finish()).unwrap_err().to_string()
        };
        assert_eq!(
            one(&[32], 12, &[0; 144]),
            "GGUF tensor `w` has type Q4_K; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"
        );
        assert_eq!(
            one(&[32], 99, &[0; 8]),
            "GGUF tensor `w` has type unknown (99); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"
        );
        assert_eq!(
            one(&[1 << 40, 1 << 40], 0, &[0; 8]),
            "GGUF tensor `w`: has dimensions [1099511627776, 1099511627776]: too many elements"
        );
        assert_eq!(
            one(&[1000, 1000], 0, &[0; 8]),
            "GGUF tensor `w`: its 4000000 bytes at offset 0 run past the end of the file"
        );
        assert_eq!(one(&[33], 2, &[0; 18]), "GGUF tensor `w`: rows of 33 elements do not fill Q4_0 blocks of 32");
        let mut many = Writer::new();
        many.f32_tensor("w", &[1], &[0.0]).f32_tensor("w", &[1], &[0.0]);
        assert_eq!(Gguf::parse(&many.finish()).unwrap_err().to_string(), "GGUF tensor `w`: is listed twice");
        let mut dims = Writer::new();
        dims.tensor("w", &[1, 1, 1, 1, 1], 0, &[0; 4]);
        assert_eq!(
            Gguf::parse(&dims.finish()).unwrap_err().to_string(),
            "GGUF tensor `w`: has 5 dimensions (1 to 4 are read)"
        );
    }
}
