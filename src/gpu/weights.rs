//! `GpuWeights`: a model's weights uploaded once and kept resident.
//!
//! The token table is the one tensor that can exceed a storage binding
//! (GPT-2's wte is 147 MiB in f32; many phones allow 128 MiB per binding), so
//! it is uploaded in chunks of whole rows, each within the device's limit; the
//! embedding gather and the tied LM head run once per chunk; an untied LM
//! head (the Llama family's `lm_head`) is chunked the same way.
//!
//! A weight matrix or table whose values are all bfloat16 or all IEEE half
//! (a bf16 or f16 checkpoint, widened to f32 on load) goes back to 16 bits
//! on the GPU, two values per u32, and the kernels widen them as they read
//! (shaders/half.wgsl): half the memory and half the bytes read per token,
//! the same numbers.

use super::{GpuContext, GpuError};
use crate::model::{Half, Matrix, ModelConfig, Tensor, ValuesRef, Weights};

pub(crate) const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC);

/// Rows `v0..v0 + rows` of the token table (or of an untied LM head).
#[derive(Clone)]
pub struct VocabChunk {
    pub v0: usize,
    pub rows: usize,
    pub buffer: wgpu::Buffer,
    /// 16-bit values packed in pairs when the whole table's values allow it.
    pub format: Option<Half>,
}

/// A weight matrix on the GPU: f32, or 16-bit values packed in pairs.
#[derive(Clone)]
pub struct PackedWeight {
    pub buffer: wgpu::Buffer,
    /// `None`: f32.
    pub format: Option<Half>,
}

/// One block's weights. Each layernorm is one buffer: gain then bias (`[2d]`).
#[derive(Clone)]
pub struct GpuBlock {
    pub ln_1: wgpu::Buffer,
    pub qkv_w: PackedWeight,
    pub qkv_b: wgpu::Buffer,
    pub proj_w: PackedWeight,
    pub proj_b: wgpu::Buffer,
    pub ln_2: wgpu::Buffer,
    pub fc_w: PackedWeight,
    pub fc_b: wgpu::Buffer,
    pub mlp_proj_w: PackedWeight,
    pub mlp_proj_b: wgpu::Buffer,
}

/// Cloning shares the buffers (wgpu handles), not the memory: two forward
/// passes over one model hold its weights once.
#[derive(Clone)]
pub struct GpuWeights {
    pub wte: Vec<VocabChunk>,
    /// GPT-2's learned positions; a 4-value placeholder for RoPE models (never read).
    pub wpe: wgpu::Buffer,
    /// An untied LM head, chunked like `wte`; `None` when the head is `wte`.
    pub lm_head: Option<Vec<VocabChunk>>,
    pub blocks: Vec<GpuBlock>,
    pub ln_f: wgpu::Buffer,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// A storage buffer holding `bytes`, zero-padded to a whole number of 16
/// bytes (the matmul kernels bind their inputs as `array<vec4<f32>>`, or of
/// u32 pairs of 16-bit values), written through the queue. Not
/// `create_buffer_init`: in the browser, wgpu maps a new buffer through a
/// temporary copy of all of it in WebAssembly memory, which never shrinks
/// (opening GPT-2 small grew it by 150 MB more than its weights), while
/// `write_buffer` hands the browser a view of `bytes` itself.
fn upload_bytes(ctx: &GpuContext, name: &str, bytes: &[u8], total: &mut u64) -> Result<wgpu::Buffer, GpuError> {
    let size = (bytes.len() as u64).max(1).next_multiple_of(16);
    ctx.check_binding(name, size)?;
    *total += size;
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size,
        usage: STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    // Writes go in whole 4-byte words; a ragged end (an odd count of 16-bit
    // values) goes as one word with zeros after it.
    let whole = bytes.len() / 4 * 4;
    if whole > 0 {
        ctx.queue.write_buffer(&buffer, 0, &bytes[..whole]);
    }
    if whole < bytes.len() {
        let mut tail = [0; 4];
        tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        ctx.queue.write_buffer(&buffer, whole as u64, &tail);
    }
    Ok(buffer)
}

/// `data` as f32, zero-padded to a whole number of vec4s.
fn upload_f32(ctx: &GpuContext, name: &str, data: &[f32], bytes: &mut u64) -> Result<wgpu::Buffer, GpuError> {
    upload_bytes(ctx, name, bytemuck::cast_slice(data), bytes)
}

/// The 16-bit format every value of `data` is exactly, if any (bfloat16
/// first: its values are also the cheaper test).
pub fn half_format(data: &[f32]) -> Option<Half> {
    if data.iter().all(|v| v.to_bits() & 0xffff == 0) {
        Some(Half::Bf16)
    } else if data.iter().all(|&v| half::f16::from_f32(v).to_f32() == v) {
        Some(Half::F16)
    } else {
        None
    }
}

/// `data` as 16-bit values of `format`, two per u32 (the even element in
/// the low half), padded to 16 bytes.
pub fn pack_half(data: &[f32], format: Half) -> Vec<u32> {
    let bits = |v: f32| match format {
        Half::F16 => half::f16::from_f32(v).to_bits(),
        Half::Bf16 => (v.to_bits() >> 16) as u16,
    };
    pack_bits(&data.iter().map(|&v| bits(v)).collect::<Vec<u16>>())
}

/// 16-bit values two per u32 (the even element in the low half), padded to 16 bytes.
pub fn pack_bits(bits: &[u16]) -> Vec<u32> {
    let mut words: Vec<u32> =
        bits.chunks(2).map(|p| p[0] as u32 | (p.get(1).copied().unwrap_or(0) as u32) << 16).collect();
    words.resize(words.len().max(1).next_multiple_of(4), 0);
    words
}

/// `values` as 16-bit pairs of `format`: 16-bit values as they are (their
/// bytes, on a little-endian target, are already [`pack_bits`]'s words), f32
/// values (each exactly a `format` value) narrowed.
fn upload_packed(
    ctx: &GpuContext,
    name: &str,
    values: ValuesRef,
    format: Half,
    bytes: &mut u64,
) -> Result<wgpu::Buffer, GpuError> {
    const _: () = assert!(cfg!(target_endian = "little"), "16-bit weights are uploaded as their bytes");
    match values {
        ValuesRef::Half(_, bits) => upload_bytes(ctx, name, bytemuck::cast_slice(bits), bytes),
        ValuesRef::F32(data) => upload_bytes(ctx, name, bytemuck::cast_slice(&pack_half(data, format)), bytes),
    }
}

/// A weight matrix, 16-bit when its values allow it.
fn upload_weight(ctx: &GpuContext, name: &str, w: &Matrix, bytes: &mut u64) -> Result<PackedWeight, GpuError> {
    upload_values(ctx, name, w.values(), sixteen_bits(w), bytes)
        .map(|buffer| PackedWeight { buffer, format: sixteen_bits(w) })
}

/// The 16-bit format a matrix goes to the GPU in: its own, or the one its
/// f32 values all fit exactly.
fn sixteen_bits(w: &Matrix) -> Option<Half> {
    match w.values() {
        ValuesRef::Half(format, _) => Some(format),
        ValuesRef::F32(data) => half_format(data),
    }
}

/// `values` as `format` pairs, or f32 when `format` is `None`.
fn upload_values(
    ctx: &GpuContext,
    name: &str,
    values: ValuesRef,
    format: Option<Half>,
    bytes: &mut u64,
) -> Result<wgpu::Buffer, GpuError> {
    match format {
        Some(half) => upload_packed(ctx, name, values, half, bytes),
        None => upload_f32(ctx, name, &values.to_f32(), bytes),
    }
}

fn upload_norm(
    ctx: &GpuContext,
    name: &str,
    g: &Tensor,
    b: &Tensor,
    bytes: &mut u64,
) -> Result<wgpu::Buffer, GpuError> {
    let joined: Vec<f32> = g.data.iter().chain(&b.data).copied().collect();
    upload_f32(ctx, name, &joined, bytes)
}

/// How many rows of `d` floats fit in one binding of `limit` bytes.
pub fn rows_per_chunk(d: usize, limit: u64) -> usize {
    ((limit / (d.max(1) as u64 * 4)) as usize).max(1)
}

impl GpuWeights {
    /// The LM head's chunks: its own, or the token table's when tied.
    pub fn head(&self) -> &[VocabChunk] {
        self.lm_head.as_deref().unwrap_or(&self.wte)
    }

    pub fn upload(ctx: &GpuContext, config: &ModelConfig, w: &Weights) -> Result<Self, GpuError> {
        Self::upload_with_chunk_limit(ctx, config, w, ctx.device.limits().max_storage_buffer_binding_size)
    }

    /// As [`Self::upload`], splitting the token table into chunks of at most
    /// `chunk_bytes` (tests use a small value to exercise the split).
    pub fn upload_with_chunk_limit(
        ctx: &GpuContext,
        config: &ModelConfig,
        w: &Weights,
        chunk_bytes: u64,
    ) -> Result<Self, GpuError> {
        let d = config.n_embd;
        let mut bytes = 0;
        let per_chunk = rows_per_chunk(d, chunk_bytes.min(ctx.device.limits().max_storage_buffer_binding_size));
        let mut chunks = |what: &str, table: &Matrix| -> Result<Vec<VocabChunk>, GpuError> {
            let format = sixteen_bits(table);
            let mut out = Vec::new();
            for v0 in (0..config.vocab_size).step_by(per_chunk) {
                let rows = per_chunk.min(config.vocab_size - v0);
                let name = format!("{what}[{v0}..{}]", v0 + rows);
                let values = table.values().slice(v0 * d..(v0 + rows) * d);
                let buffer = upload_values(ctx, &name, values, format, &mut bytes)?;
                out.push(VocabChunk { v0, rows, buffer, format });
            }
            Ok(out)
        };
        let wte = chunks("wte", &w.wte)?;
        let lm_head = w.lm_head.as_ref().map(|head| chunks("lm_head", head)).transpose()?;
        let mut blocks = Vec::with_capacity(w.blocks.len());
        for (l, b) in w.blocks.iter().enumerate() {
            let name = |what: &str| format!("h.{l}.{what}");
            blocks.push(GpuBlock {
                ln_1: upload_norm(ctx, &name("ln_1"), &b.ln_1_g, &b.ln_1_b, &mut bytes)?,
                qkv_w: upload_weight(ctx, &name("attn.c_attn.weight"), &b.attn_qkv_w, &mut bytes)?,
                qkv_b: upload_f32(ctx, &name("attn.c_attn.bias"), &b.attn_qkv_b.data, &mut bytes)?,
                proj_w: upload_weight(ctx, &name("attn.c_proj.weight"), &b.attn_proj_w, &mut bytes)?,
                proj_b: upload_f32(ctx, &name("attn.c_proj.bias"), &b.attn_proj_b.data, &mut bytes)?,
                ln_2: upload_norm(ctx, &name("ln_2"), &b.ln_2_g, &b.ln_2_b, &mut bytes)?,
                fc_w: upload_weight(ctx, &name("mlp.c_fc.weight"), &b.mlp_fc_w, &mut bytes)?,
                fc_b: upload_f32(ctx, &name("mlp.c_fc.bias"), &b.mlp_fc_b.data, &mut bytes)?,
                mlp_proj_w: upload_weight(ctx, &name("mlp.c_proj.weight"), &b.mlp_proj_w, &mut bytes)?,
                mlp_proj_b: upload_f32(ctx, &name("mlp.c_proj.bias"), &b.mlp_proj_b.data, &mut bytes)?,
            });
        }
        Ok(Self {
            wte,
            wpe: match &w.wpe {
                Some(wpe) => upload_f32(ctx, "wpe", &wpe.data, &mut bytes)?,
                None => upload_f32(ctx, "wpe (unused: RoPE)", &[0.0; 4], &mut bytes)?,
            },
            lm_head,
            blocks,
            ln_f: upload_norm(ctx, "ln_f", &w.ln_f_g, &w.ln_f_b, &mut bytes)?,
            bytes,
        })
    }
}
