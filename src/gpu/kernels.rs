//! `Kernels`: one compute pipeline per WGSL file in `shaders/`, the uniform
//! parameter block of each, and the shape checks that guard every dispatch.
//!
//! Two ways to dispatch: [`Kernels::dispatch`] binds fresh buffers (kernel
//! tests, one-off work); the forward pass builds its bind groups once per
//! buffer layout with [`Kernels::bind`] and only rewrites parameters per run.

use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::context::past_loop_limit;
use super::weights::GpuWeights;
use super::wgsl::wgsl;
use super::{GpuContext, GpuError};
use crate::engine::Mask;
use crate::model::{Activation, ModelConfig};

/// A kernel, named after its file in `shaders/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Embed,
    /// embed.wgsl over a 16-bit token table (embed_table_16.wgsl).
    Embed16,
    Layernorm,
    MatmulBias,
    MatmulSkinny,
    /// The same two with 16-bit weights (shaders/matmul_weights_16.wgsl).
    MatmulBias16,
    MatmulSkinny16,
    /// The four above with the gated epilogue (`GATED`: y = act(gate)·up, SwiGLU).
    MatmulBiasGated,
    MatmulSkinnyGated,
    MatmulBiasGated16,
    MatmulSkinnyGated16,
    AttentionRows,
    FlashAttention,
    /// Flash attention with a workgroup per query row (shaders/flash_rows.wgsl), for few rows.
    FlashRows,
    TopK,
    ValueRange,
    RowNorms,
    Rope,
    HeadScores,
    ReplaceHead,
}

impl Kernel {
    /// Every kernel, in declaration order (`Kernel as usize` indexes it).
    pub const ALL: [Kernel; 20] = [
        Kernel::Embed,
        Kernel::Embed16,
        Kernel::Layernorm,
        Kernel::MatmulBias,
        Kernel::MatmulSkinny,
        Kernel::MatmulBias16,
        Kernel::MatmulSkinny16,
        Kernel::MatmulBiasGated,
        Kernel::MatmulSkinnyGated,
        Kernel::MatmulBiasGated16,
        Kernel::MatmulSkinnyGated16,
        Kernel::AttentionRows,
        Kernel::FlashAttention,
        Kernel::FlashRows,
        Kernel::TopK,
        Kernel::ValueRange,
        Kernel::RowNorms,
        Kernel::Rope,
        Kernel::HeadScores,
        Kernel::ReplaceHead,
    ];

    /// The matmul pipeline for its tile shape (`skinny`: 4 rows a
    /// workgroup), weight format (`w16`: 16-bit) and epilogue (`gated`:
    /// act(gate)·up): what a matmul dispatches and what a forward compiles.
    pub fn matmul(skinny: bool, w16: bool, gated: bool) -> Kernel {
        match (skinny, w16, gated) {
            (true, false, false) => Kernel::MatmulSkinny,
            (false, false, false) => Kernel::MatmulBias,
            (true, true, false) => Kernel::MatmulSkinny16,
            (false, true, false) => Kernel::MatmulBias16,
            (true, false, true) => Kernel::MatmulSkinnyGated,
            (false, false, true) => Kernel::MatmulBiasGated,
            (true, true, true) => Kernel::MatmulSkinnyGated16,
            (false, true, true) => Kernel::MatmulBiasGated16,
        }
    }

    /// One of the eight matmul pipelines (they share one bind group layout).
    pub fn is_matmul(self) -> bool {
        matches!(
            self,
            Kernel::MatmulBias
                | Kernel::MatmulSkinny
                | Kernel::MatmulBias16
                | Kernel::MatmulSkinny16
                | Kernel::MatmulBiasGated
                | Kernel::MatmulSkinnyGated
                | Kernel::MatmulBiasGated16
                | Kernel::MatmulSkinnyGated16
        )
    }

    /// One of the two skinny matmul pipelines' shapes (4 rows a workgroup).
    fn is_skinny(self) -> bool {
        matches!(
            self,
            Kernel::MatmulSkinny | Kernel::MatmulSkinny16 | Kernel::MatmulSkinnyGated | Kernel::MatmulSkinnyGated16
        )
    }

    /// One of the gated matmul pipelines.
    fn is_gated(self) -> bool {
        matches!(
            self,
            Kernel::MatmulBiasGated
                | Kernel::MatmulSkinnyGated
                | Kernel::MatmulBiasGated16
                | Kernel::MatmulSkinnyGated16
        )
    }
}

/// The 16-bit weight formats the matmul kernels widen to f32 as they read.
pub use crate::model::Half;

pub struct Kernels {
    device: wgpu::Device,
    /// Each kernel's pipeline, compiled the first time it is dispatched
    /// ([`Kernels::pipeline`]): a model uses about half of them (GPT-2 no
    /// gated or RoPE kernel, a 16-bit model no f32 matmul), and a software
    /// GPU (SwiftShader) takes seconds to compile them all.
    pipelines: [OnceLock<wgpu::ComputePipeline>; Kernel::ALL.len()],
    /// The bind group layout every matmul pipeline shares, so one bind group serves any.
    matmul_layout: wgpu::BindGroupLayout,
    matmul_pipeline_layout: wgpu::PipelineLayout,
    /// The bind group layout of both flash kernels, so one bind group serves either.
    flash_layout: wgpu::BindGroupLayout,
    flash_pipeline_layout: wgpu::PipelineLayout,
}

/// Uniform blocks are padded to this, so several can share one buffer.
pub const PARAM_STRIDE: u64 = 256;

/// shaders/embed.wgsl: rows `row0..row0+m` of `x = wte[ids] + wpe`, for ids in `v0..v0+vn`.
/// The Rust mirror of `struct Params` in shaders/embed.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct EmbedParams {
    pub m: u32,
    pub d: u32,
    pub row0: u32,
    pub v0: u32,
    pub vn: u32,
    /// 1: add `wpe` (GPT-2's learned positions); 0: token rows alone (RoPE).
    pub positions: u32,
    /// The table chunk's format for the Embed16 pipeline: 1 IEEE half, 2 bfloat16 (0: f32).
    pub half: u32,
    pub _pad: u32,
}

/// shaders/layernorm.wgsl: rows `row0..row0+rows` of `x[·×d]`; RMSNorm when `rms` is 1.
/// The Rust mirror of `struct Params` in shaders/layernorm.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LayernormParams {
    pub rows: u32,
    pub d: u32,
    pub eps: f32,
    pub row0: u32,
    pub rms: u32,
    pub _pad: [u32; 3],
}

/// What shaders/matmul_bias.wgsl fuses around `x · w` (see its header).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MatmulFusion {
    /// Layernorm the rows of x with this epsilon (gain and bias in the `ln` binding).
    pub layernorm: Option<f32>,
    /// With `layernorm`: RMSNorm instead (the Llama family).
    pub rms: bool,
    /// `w` holds 16-bit values packed in pairs (the 16-bit pipelines).
    pub w16: Option<Half>,
    /// Also write the normalised rows to `ln_out`.
    pub write_ln: bool,
    /// `w` is `[N×K]`, used transposed.
    pub transposed: bool,
    pub bias: bool,
    pub activation: Option<Activation>,
    /// Add `res` after the activation.
    pub residual: bool,
    /// Also write the value before the residual to `pre`.
    pub write_pre: bool,
    /// `w` is `[K × 2N]`, gate columns then up columns (`b` `[2N]`), and
    /// `y = act(x·w_gate + b_gate) · (x·w_up + b_up)`: SwiGLU with
    /// `Activation::Silu`, in the gated pipelines. `residual` and
    /// `write_pre` do not apply.
    pub gated: bool,
}

/// shaders/matmul_bias.wgsl's uniform block.
/// The Rust mirror of `struct Params` in shaders/matmul_common.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub k: u32,
    pub n: u32,
    pub xrow0: u32,
    pub yrow0: u32,
    pub ldy: u32,
    pub ycol0: u32,
    pub flags: u32,
    pub act: u32,
    pub eps: f32,
    pub _pad: [u32; 2],
}

impl MatmulParams {
    /// `y[M×N] = fused(x[M×K] · w)`, rows from 0, `y` exactly N wide.
    pub fn new((m, k, n): (usize, usize, usize), fusion: MatmulFusion) -> Self {
        let flag = |on: bool, bit: u32| if on { bit } else { 0 };
        let flags = flag(fusion.layernorm.is_some(), 1)
            | flag(fusion.write_ln, 2)
            | flag(fusion.transposed, 4)
            | flag(fusion.bias, 8)
            | flag(fusion.residual, 16)
            | flag(fusion.write_pre, 32)
            | flag(fusion.rms, 128)
            | flag(fusion.w16.is_some(), 256)
            | flag(fusion.w16 == Some(Half::Bf16), 512)
            | flag(fusion.gated, 1024)
            // vec4 tile loads: K (and N, unless w is read transposed) whole vec4s.
            | flag(k % 4 == 0 && (fusion.transposed || n % 4 == 0), 64);
        let act = match fusion.activation {
            None => 0,
            Some(Activation::GeluTanh) => 1,
            Some(Activation::Gelu) => 2,
            Some(Activation::Relu) => 3,
            Some(Activation::Silu) => 4,
        };
        Self {
            m: m as u32,
            k: k as u32,
            n: n as u32,
            xrow0: 0,
            yrow0: 0,
            ldy: n as u32,
            ycol0: 0,
            flags,
            act,
            eps: fusion.layernorm.unwrap_or(0.0),
            _pad: [0; 2],
        }
    }

    /// Reads rows from `xrow0` and writes rows from `yrow0`.
    pub fn rows_from(mut self, xrow0: usize, yrow0: usize) -> Self {
        self.xrow0 = xrow0 as u32;
        self.yrow0 = yrow0 as u32;
        self
    }

    /// Writes into columns `ycol0..ycol0+N` of a `y` that is `ldy` wide.
    pub fn into_columns(mut self, ycol0: usize, ldy: usize) -> Self {
        self.ycol0 = ycol0 as u32;
        self.ldy = ldy as u32;
        self
    }

    /// The kernel for this shape: matmul_skinny.wgsl for a few rows (appends
    /// with the KV cache, the last position's logits), the 64×64 tiles
    /// otherwise; the 16-bit and gated pipelines of either by the flags.
    pub fn kernel(&self) -> Kernel {
        let w16 = self.flags & 256 != 0;
        let gated = self.flags & 1024 != 0;
        Kernel::matmul(self.m as usize <= SKINNY_MAX_ROWS, w16, gated)
    }

    /// Workgroups for [`MatmulParams::kernel`].
    pub fn workgroups(&self) -> [u32; 3] {
        self.workgroups_for(self.kernel())
    }

    /// Workgroups for either matmul kernel (tests run both on every shape).
    /// A gated kernel computes half as many columns of y per workgroup.
    pub fn workgroups_for(&self, kernel: Kernel) -> [u32; 3] {
        let columns = |plain: u32| if kernel.is_gated() { plain / 2 } else { plain };
        if kernel.is_skinny() {
            // 64 columns of y a workgroup (32 gated); past a dimension's
            // 65,535 workgroups the tiles fold into z (the kernel reads x + z·65535).
            let tiles = self.n.div_ceil(columns(64));
            let (x, z) = if tiles > SKINNY_MAX_X { (SKINNY_MAX_X, tiles.div_ceil(SKINNY_MAX_X)) } else { (tiles, 1) };
            [x, self.m.div_ceil(4), z]
        } else {
            [self.n.div_ceil(columns(64)), self.m.div_ceil(64), 1]
        }
    }
}

/// WebGPU's guaranteed workgroups per dimension: matmul_skinny.wgsl's tiles fold into z past it.
const SKINNY_MAX_X: u32 = 65_535;

/// Up to this many rows, [`MatmulParams::kernel`] picks matmul_skinny.wgsl.
pub const SKINNY_MAX_ROWS: usize = 16;

/// shaders/attention_rows.wgsl and flash_attention.wgsl: query rows
/// `row0..row0+m` of every head over keys `0..t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionShape {
    pub m: usize,
    pub t: usize,
    pub n_head: usize,
    /// KV heads: query head h reads KV head h / (n_head / n_kv_head); equal
    /// to `n_head` for full multi-head attention (GPT-2).
    pub n_kv_head: usize,
    pub d_head: usize,
    pub row0: usize,
    pub mask: Mask,
}

/// The uniform block of attention_rows.wgsl and flash_attention.wgsl (the same
/// layout in both; flash attention writes no T×T matrix and ignores `cap`).
/// The Rust mirror of `struct Params` in shaders/attention_common.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct AttentionParams {
    pub m: u32,
    pub t: u32,
    pub n_head: u32,
    pub d_head: u32,
    pub row0: u32,
    pub cap: u32,
    pub mask_mode: u32,
    pub window: u32,
    pub scale: f32,
    pub neg_inf_bits: u32,
    pub n_kv_head: u32,
    /// attention_rows.wgsl: rows below it are kept from an earlier run, only
    /// their columns from `kept` on written ([`AttentionShape::rows_params_keeping`]).
    pub kept: u32,
}

/// d_head limits (attention_rows.wgsl takes any T its buffers' capacity holds).
pub const MAX_ROWS_D_HEAD: usize = 256;
pub const MAX_FLASH_D_HEAD: usize = 128;
/// The most query rows flash_rows.wgsl (a workgroup per row and head) takes;
/// more go to flash_attention.wgsl (an invocation per row, 64 rows a
/// workgroup). Up to 64 rows, flash_attention.wgsl runs one workgroup per
/// head whatever the count, each invocation walking all T keys alone.
pub const FLASH_ROWS_MAX_M: usize = 64;

impl AttentionShape {
    fn check(&self, max_d_head: usize, max_t: usize, what: &str) -> Result<(), GpuError> {
        let grouped = self.n_kv_head > 0 && self.n_head.is_multiple_of(self.n_kv_head);
        if !grouped {
            return Err(GpuError::Unsupported(format!(
                "{what} with {} query heads over {} KV heads (they must divide them)",
                self.n_head, self.n_kv_head
            )));
        }
        if self.d_head == 0 || self.d_head > max_d_head || self.t > max_t || self.row0 + self.m > self.t {
            return Err(GpuError::Unsupported(format!(
                "{what} with T = {}, rows {}..{}, d_head = {} (limits: T ≤ {max_t}, 1 ≤ d_head ≤ {max_d_head})",
                self.t,
                self.row0,
                self.row0 + self.m,
                self.d_head
            )));
        }
        Ok(())
    }

    fn params(&self, cap: usize) -> AttentionParams {
        let (mask_mode, window) = self.mask.gpu_code();
        AttentionParams {
            m: self.m as u32,
            t: self.t as u32,
            n_head: self.n_head as u32,
            d_head: self.d_head as u32,
            row0: self.row0 as u32,
            cap: cap as u32,
            mask_mode,
            window,
            scale: 1.0 / (self.d_head as f32).sqrt(),
            neg_inf_bits: f32::NEG_INFINITY.to_bits(),
            n_kv_head: self.n_kv_head as u32,
            kept: 0,
        }
    }

    /// Parameters for attention_rows.wgsl; `cap` is the row stride of its T×T outputs.
    pub fn rows_params(&self, cap: usize) -> Result<AttentionParams, GpuError> {
        self.check(MAX_ROWS_D_HEAD, cap, "attention_rows")?;
        Ok(self.params(cap))
    }

    /// [`AttentionShape::rows_params`] for rows `row0..row0+m` of which those
    /// below `kept` were computed by an earlier run over the same first `kept`
    /// tokens: for those only the scores against keys `kept..t` are written
    /// (their softmax and A·V cannot change, as the mask hides those keys
    /// from them). A mask that shows a row later keys keeps nothing.
    pub fn rows_params_keeping(&self, cap: usize, kept: usize) -> Result<AttentionParams, GpuError> {
        let mut params = self.rows_params(cap)?;
        if kept > 0 {
            if self.mask == Mask::Bidirectional {
                return Err(GpuError::Unsupported("keeping rows under a bidirectional mask".into()));
            }
            if kept > self.row0 + self.m {
                return Err(GpuError::OutOfRange(format!("{kept} kept rows of {}", self.row0 + self.m)));
            }
            params.kept = kept as u32;
        }
        Ok(params)
    }

    /// Parameters for flash_attention.wgsl and flash_rows.wgsl.
    pub fn flash_params(&self) -> Result<AttentionParams, GpuError> {
        self.check(MAX_FLASH_D_HEAD, usize::MAX, "flash_attention")?;
        Ok(self.params(self.t))
    }

    pub fn rows_workgroups(&self) -> [u32; 3] {
        [self.m as u32, self.n_head as u32, 1]
    }

    pub fn flash_workgroups(&self) -> [u32; 3] {
        [(self.m as u32).div_ceil(64), self.n_head as u32, 1]
    }

    /// flash_rows.wgsl's dispatch: a workgroup per query row and head.
    pub fn flash_rows_workgroups(&self) -> [u32; 3] {
        [self.m as u32, self.n_head as u32, 1]
    }

    /// Loop iterations of one flash_attention.wgsl invocation at most, as
    /// llvmpipe counts them (a loop's exit test counts as one): the last
    /// rows' walk over every key (a dot product and an accumulation of
    /// d_head each per key), the tile loads and the rescaling per tile, q's
    /// load and the output's store. Measured on lavapipe, d_head 16: T = 1,789
    /// (65,474 by this count) computes every row, T = 1,790 (65,510) stops
    /// short from row 1,728 on; d_head 64: 448 keys whole, 512 not.
    pub fn flash_iterations(&self) -> u64 {
        let (t, d) = (self.t as u64, self.d_head.max(1) as u64);
        let tile = (2048 / d).clamp(1, 64);
        let tiles = t.div_ceil(tile);
        2 * t * (d + 2) + tiles * (tile * d / 64 + d + 7) + 2 * (d + 1)
    }

    /// Loop iterations of one flash_rows.wgsl invocation at most, counted
    /// as [`Self::flash_iterations`] counts them: per tile of 1,024 keys its
    /// share of the scores (a dot product of d_head each) and of the
    /// exponentials, two reductions, and its output columns' walk over the
    /// tile's keys. About 2,100 per tile at d_head 64, 4,200 at 128: past
    /// llvmpipe's bound from about 27,000 and 13,000 keys.
    pub fn flash_rows_iterations(&self) -> u64 {
        let (t, d) = (self.t as u64, self.d_head.max(1) as u64);
        let tiles = t.div_ceil(1024);
        t.div_ceil(64) * (d + 4) + d.div_ceil(64) * (t + 2 * tiles) + tiles * 24 + d + 16
    }

    /// [`Self::flash_kernel`], refused where the kernel it picks would pass
    /// the adapter's `loop_limit` (and stop short there).
    pub fn flash_kernel_within(&self, loop_limit: Option<u64>) -> Result<(Kernel, [u32; 3]), GpuError> {
        let (kernel, workgroups) = self.flash_kernel(loop_limit);
        if let Some(limit) = past_loop_limit(loop_limit, self.flash_rows_iterations()) {
            if kernel == Kernel::FlashRows {
                return Err(GpuError::Unsupported(format!(
                    "attention over {} keys of {} on a driver that stops a loop after {limit} iterations",
                    self.t, self.d_head
                )));
            }
        }
        Ok((kernel, workgroups))
    }

    /// The flash kernel for these rows and its dispatch (both take
    /// [`AttentionShape::flash_params`] and the same bind group): a
    /// workgroup per row for at most [`FLASH_ROWS_MAX_M`] rows, and for any
    /// number where an invocation of flash_attention.wgsl would pass the
    /// adapter's `loop_limit` (its 64 invocations share a row's keys).
    pub fn flash_kernel(&self, loop_limit: Option<u64>) -> (Kernel, [u32; 3]) {
        let too_long = past_loop_limit(loop_limit, self.flash_iterations()).is_some();
        if self.m <= FLASH_ROWS_MAX_M || too_long {
            (Kernel::FlashRows, self.flash_rows_workgroups())
        } else {
            (Kernel::FlashAttention, self.flash_workgroups())
        }
    }
}

/// shaders/top_k.wgsl: the `k` largest of `logits[row·v .. row·v + v]` and the
/// softmax normaliser at `temperature`.
/// The Rust mirror of `struct Params` in shaders/top_k.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct TopKParams {
    pub v: u32,
    pub row: u32,
    pub k: u32,
    pub temperature: f32,
    pub neg_inf_bits: u32,
    pub _pad: [u32; 3],
}

/// The most ranks top_k.wgsl is asked for (k rounds over the vocabulary each).
pub const MAX_TOP_K: usize = 256;

impl TopKParams {
    pub fn new(v: usize, row: usize, k: usize, temperature: f32) -> Self {
        Self {
            v: v as u32,
            row: row as u32,
            k: k as u32,
            temperature,
            neg_inf_bits: f32::NEG_INFINITY.to_bits(),
            _pad: [0; 3],
        }
    }

    pub fn workgroups(&self) -> [u32; 3] {
        [1, 1, 1]
    }

    /// f32 values the output holds: max, normaliser, then (id, logit) per rank.
    pub fn output_len(&self) -> usize {
        2 + 2 * self.k as usize
    }
}

/// shaders/value_range.wgsl: [min, max] of `rows × cols` cells at
/// `offset + i·row_stride + j`, skipping masked cells when `use_mask` is 1.
/// The Rust mirror of `struct Params` in shaders/value_range.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ValueRangeParams {
    pub rows: u32,
    pub cols: u32,
    pub offset: u32,
    pub row_stride: u32,
    pub use_mask: u32,
    pub _pad: [u32; 3],
}

impl ValueRangeParams {
    pub fn new(rows: usize, cols: usize, offset: usize, row_stride: usize, use_mask: bool) -> Self {
        Self {
            rows: rows as u32,
            cols: cols as u32,
            offset: offset as u32,
            row_stride: row_stride as u32,
            use_mask: u32::from(use_mask),
            _pad: [0; 3],
        }
    }
}

/// shaders/row_norms.wgsl: ‖row‖ of `rows` rows of `d` into row `out_row` of a
/// matrix `out_stride` wide.
/// The Rust mirror of `struct Params` in shaders/row_norms.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RowNormsParams {
    pub rows: u32,
    pub d: u32,
    pub out_row: u32,
    pub out_stride: u32,
}

impl RowNormsParams {
    pub fn workgroups(&self) -> [u32; 3] {
        [self.rows.div_ceil(64), 1, 1]
    }
}

/// shaders/rope.wgsl: RoPE on the first `n_heads` head slices of rows
/// `row0..row0+rows` of a `stride`-wide fused projection, with the cos/sin
/// table of `engine::ops::rope_table`; `write_pre` keeps the slices before.
/// The Rust mirror of `struct Params` in shaders/rope.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RopeParams {
    pub rows: u32,
    pub row0: u32,
    pub stride: u32,
    pub n_heads: u32,
    pub d_head: u32,
    pub write_pre: u32,
    pub _pad: [u32; 2],
}

impl RopeParams {
    pub fn new(rows: usize, row0: usize, stride: usize, n_heads: usize, d_head: usize, write_pre: bool) -> Self {
        let u = |x: usize| x as u32;
        Self {
            rows: u(rows),
            row0: u(row0),
            stride: u(stride),
            n_heads: u(n_heads),
            d_head: u(d_head),
            write_pre: u32::from(write_pre),
            _pad: [0; 2],
        }
    }

    pub fn workgroups(&self) -> [u32; 3] {
        [(self.rows * self.n_heads * (self.d_head / 2)).div_ceil(64), 1, 1]
    }
}

/// shaders/head_scores.wgsl: templates `first_template..` of every head of
/// layer `layer` from its T×T weights (row stride `cap`).
/// The Rust mirror of `struct Params` in shaders/head_scores.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct HeadScoresParams {
    pub t: u32,
    pub cap: u32,
    pub n_head: u32,
    pub n_layer: u32,
    pub layer: u32,
    pub first_template: u32,
    /// The "attends to token X" template's token.
    pub token: u32,
    /// The painted pattern's side (template 6).
    pub pattern_n: u32,
    /// Templates in the output (its second index), dispatched or not.
    pub templates: u32,
    pub _pad: [u32; 3],
}

impl HeadScoresParams {
    /// Rows a workgroup sums (one per invocation).
    pub const BLOCK_ROWS: usize = 64;

    /// Blocks of [`Self::BLOCK_ROWS`] rows: the output holds a sum per block.
    pub fn blocks(t: usize) -> usize {
        t.div_ceil(Self::BLOCK_ROWS).max(1)
    }

    /// One workgroup per head, dispatched template and block of rows.
    pub fn workgroups(&self, dispatched: usize) -> [u32; 3] {
        [self.n_head, dispatched as u32, Self::blocks(self.t as usize) as u32]
    }
}

/// shaders/replace_head.wgsl: columns `col0..col0 + d_head` of rows `0..t`
/// of a `[t × q_dim]` head output, replaced by zeros (mode 0), the mean of
/// `src`'s rows (1) or `src`'s rows (2), `src` read from `src_offset`.
/// The Rust mirror of `struct Params` in shaders/replace_head.wgsl: keep the two in sync (field order, types, padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ReplaceHeadParams {
    pub t: u32,
    pub q_dim: u32,
    pub d_head: u32,
    pub col0: u32,
    pub mode: u32,
    pub src_offset: u32,
    pub _pad: [u32; 2],
}

impl ReplaceHeadParams {
    pub fn workgroups(&self) -> [u32; 3] {
        [self.d_head.div_ceil(64), 1, 1]
    }
}

impl EmbedParams {
    pub fn workgroups(&self) -> [u32; 3] {
        [(self.m * self.d).div_ceil(64), 1, 1]
    }
}

impl LayernormParams {
    pub fn workgroups(&self) -> [u32; 3] {
        [self.rows.div_ceil(64), 1, 1]
    }
}

fn pipeline(
    device: &wgpu::Device,
    label: &str,
    source: &str,
    layout: Option<&wgpu::PipelineLayout>,
) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// A kernel's source with the prelude its family shares in front (WGSL has no
/// include): matmul_common.wgsl (uniform block, flags, shared bindings,
/// epilogue) or attention_common.wgsl (uniform block, qkv binding, mask rule).
fn with_prelude(prelude: &str, kernel: &str) -> String {
    format!("{prelude}\n{kernel}")
}

const MATMUL_COMMON: &str = wgsl!("matmul_common.wgsl");
const MATMUL_BIAS: &str = wgsl!("matmul_bias.wgsl");
const MATMUL_SKINNY: &str = wgsl!("matmul_skinny.wgsl");
const W_F32: &str = wgsl!("matmul_weights_f32.wgsl");
const W_F32_SCALAR: &str = wgsl!("matmul_weights_f32_scalar.wgsl");
const W_16: &str = wgsl!("matmul_weights_16.wgsl");
const HALF: &str = wgsl!("half.wgsl");
const EMBED: &str = wgsl!("embed.wgsl");
const EMBED_F32: &str = wgsl!("embed_table_f32.wgsl");
const EMBED_16: &str = wgsl!("embed_table_16.wgsl");

/// A matmul kernel after matmul_common.wgsl and the way it reads w (f32, or
/// 16-bit after half.wgsl), specialised by the `GATED` constant (the gated
/// epilogue, see matmul_common.wgsl): a `const`, so in the plain pipelines
/// every `if GATED` is a branch on `false` that the shader compiler folds.
fn matmul_source(kernel: &str, weights: &str, gated: bool) -> String {
    let common = with_prelude(&format!("const GATED: bool = {gated};"), MATMUL_COMMON);
    with_prelude(&with_prelude(&with_prelude(&common, HALF), weights), kernel)
}
const ATTENTION_COMMON: &str = wgsl!("attention_common.wgsl");
const ATTENTION_ROW_COMMON: &str = wgsl!("attention_row_common.wgsl");

/// The bindings of matmul_bias.wgsl and matmul_skinny.wgsl: the uniform
/// block, then x, w, b (read), y (write), res, ln (read), ln_out, pre (write).
fn matmul_bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    bind_group_layout(device, "matmul", &[true, true, true, false, true, true, false, false])
}

/// A uniform block at binding 0, then storage buffers at 1, 2, … (read-only where `read_only` says).
fn bind_group_layout(device: &wgpu::Device, label: &str, read_only: &[bool]) -> wgpu::BindGroupLayout {
    let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let uniform = wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let mut entries = vec![uniform];
    entries.extend(read_only.iter().enumerate().map(|(i, &ro)| storage(i as u32 + 1, ro)));
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries: &entries })
}

impl Kernels {
    /// The kernels of `ctx`'s device; no pipeline is compiled yet.
    pub fn new(ctx: &GpuContext) -> Self {
        let d = &ctx.device;
        let matmul_layout = matmul_bind_group_layout(d);
        let matmul_pipeline_layout = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("matmul"),
            bind_group_layouts: &[Some(&matmul_layout)],
            immediate_size: 0,
        });
        let flash_layout = bind_group_layout(d, "flash attention", &[true, false]);
        let flash_pipeline_layout = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("flash attention"),
            bind_group_layouts: &[Some(&flash_layout)],
            immediate_size: 0,
        });
        Self {
            device: d.clone(),
            pipelines: Default::default(),
            matmul_layout,
            matmul_pipeline_layout,
            flash_layout,
            flash_pipeline_layout,
        }
    }

    /// Compiles every kernel's pipeline now (the tests that check they all compile).
    pub fn compile_all(&self) {
        for kernel in Kernel::ALL {
            self.pipeline(kernel);
        }
    }

    /// Compiles now the kernels every forward pass of this model dispatches
    /// (its family's, for its weights' formats), so that the error scope
    /// around the forward's creation sees them compile: a GPU that cannot
    /// compile one is refused before a run shows any number. The others (the
    /// head finder's, an intervention's) compile on first use.
    pub fn compile_for(&self, config: &ModelConfig, weights: &GpuWeights) {
        let llama = config.architecture.is_llama_family();
        let vocab = weights.wte.iter().chain(weights.lm_head.iter().flatten()).map(|c| c.format.is_some());
        // Which weight formats the plain (not gated) and the gated matmuls
        // read: [f32 seen, 16-bit seen] each.
        let (mut plain, mut gated) = ([false; 2], [false; 2]);
        for b in &weights.blocks {
            for w in [&b.qkv_w, &b.proj_w, &b.mlp_proj_w] {
                plain[usize::from(w.format.is_some())] = true;
            }
            let fc = usize::from(b.fc_w.format.is_some());
            if llama {
                gated[fc] = true
            } else {
                plain[fc] = true
            }
        }
        for half in vocab {
            plain[usize::from(half)] = true;
        }
        let mut used = vec![Kernel::Layernorm, Kernel::AttentionRows, Kernel::FlashAttention, Kernel::FlashRows];
        used.extend([Kernel::TopK, Kernel::ValueRange, Kernel::RowNorms]);
        used.extend(weights.wte.iter().map(|c| if c.format.is_some() { Kernel::Embed16 } else { Kernel::Embed }));
        for (is_gated, seen) in [(false, plain), (true, gated)] {
            for w16 in [false, true].into_iter().filter(|&w16| seen[usize::from(w16)]) {
                used.extend([true, false].map(|skinny| Kernel::matmul(skinny, w16, is_gated)));
            }
        }
        if llama {
            used.push(Kernel::Rope);
        }
        for kernel in used {
            self.pipeline(kernel);
        }
    }

    /// The kernels compiled so far.
    pub fn compiled(&self) -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|&k| self.pipelines[k as usize].get().is_some()).collect()
    }

    /// `kernel`'s pipeline, compiled on first use.
    pub fn pipeline(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        self.pipelines[kernel as usize].get_or_init(|| self.compile(kernel))
    }

    fn compile(&self, kernel: Kernel) -> wgpu::ComputePipeline {
        let d = &self.device;
        let (mm, flash) = (Some(&self.matmul_pipeline_layout), Some(&self.flash_pipeline_layout));
        match kernel {
            Kernel::Embed => pipeline(d, "embed", &with_prelude(EMBED_F32, EMBED), None),
            Kernel::Embed16 => {
                pipeline(d, "embed (16-bit table)", &with_prelude(&with_prelude(HALF, EMBED_16), EMBED), None)
            }
            Kernel::Layernorm => pipeline(d, "layernorm", wgsl!("layernorm.wgsl"), None),
            Kernel::MatmulBias => pipeline(d, "matmul_bias", &matmul_source(MATMUL_BIAS, W_F32, false), mm),
            Kernel::MatmulSkinny => {
                pipeline(d, "matmul_skinny", &matmul_source(MATMUL_SKINNY, W_F32_SCALAR, false), mm)
            }
            Kernel::MatmulBias16 => pipeline(d, "matmul_bias (16-bit w)", &matmul_source(MATMUL_BIAS, W_16, false), mm),
            Kernel::MatmulSkinny16 => {
                pipeline(d, "matmul_skinny (16-bit w)", &matmul_source(MATMUL_SKINNY, W_16, false), mm)
            }
            Kernel::MatmulBiasGated => pipeline(d, "matmul_bias (gated)", &matmul_source(MATMUL_BIAS, W_F32, true), mm),
            Kernel::MatmulSkinnyGated => {
                pipeline(d, "matmul_skinny (gated)", &matmul_source(MATMUL_SKINNY, W_F32_SCALAR, true), mm)
            }
            Kernel::MatmulBiasGated16 => {
                pipeline(d, "matmul_bias (gated, 16-bit w)", &matmul_source(MATMUL_BIAS, W_16, true), mm)
            }
            Kernel::MatmulSkinnyGated16 => {
                pipeline(d, "matmul_skinny (gated, 16-bit w)", &matmul_source(MATMUL_SKINNY, W_16, true), mm)
            }
            Kernel::AttentionRows => pipeline(
                d,
                "attention_rows",
                &with_prelude(ATTENTION_COMMON, &with_prelude(ATTENTION_ROW_COMMON, wgsl!("attention_rows.wgsl"))),
                None,
            ),
            Kernel::FlashAttention => {
                pipeline(d, "flash_attention", &with_prelude(ATTENTION_COMMON, wgsl!("flash_attention.wgsl")), flash)
            }
            Kernel::FlashRows => pipeline(
                d,
                "flash_rows",
                &with_prelude(ATTENTION_COMMON, &with_prelude(ATTENTION_ROW_COMMON, wgsl!("flash_rows.wgsl"))),
                flash,
            ),
            Kernel::TopK => pipeline(d, "top_k", wgsl!("top_k.wgsl"), None),
            Kernel::ValueRange => pipeline(d, "value_range", wgsl!("value_range.wgsl"), None),
            Kernel::RowNorms => pipeline(d, "row_norms", wgsl!("row_norms.wgsl"), None),
            Kernel::Rope => pipeline(d, "rope", wgsl!("rope.wgsl"), None),
            Kernel::HeadScores => pipeline(d, "head_scores", wgsl!("head_scores.wgsl"), None),
            Kernel::ReplaceHead => pipeline(d, "replace_head", wgsl!("replace_head.wgsl"), None),
        }
    }

    /// A bind group for `kernel`: its parameters at `uniform[offset..offset + size]`,
    /// then `buffers` at bindings 1, 2, ….
    pub fn bind(
        &self,
        ctx: &GpuContext,
        kernel: Kernel,
        uniform: &wgpu::Buffer,
        offset: u64,
        size: u64,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let params = wgpu::BufferBinding { buffer: uniform, offset, size: wgpu::BufferSize::new(size) };
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::Buffer(params) }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() }),
        );
        let auto_layout;
        let layout = match kernel {
            k if k.is_matmul() => &self.matmul_layout,
            Kernel::FlashAttention | Kernel::FlashRows => &self.flash_layout,
            _ => {
                auto_layout = self.pipeline(kernel).get_bind_group_layout(0);
                &auto_layout
            }
        };
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries })
    }

    /// Fails clearly when a dispatch exceeds the device's workgroup count limit.
    pub fn check_workgroups(ctx: &GpuContext, workgroups: [u32; 3]) -> Result<(), GpuError> {
        Self::check_workgroups_limit(ctx.device.limits().max_compute_workgroups_per_dimension, workgroups)
    }

    pub fn check_workgroups_limit(limit: u32, workgroups: [u32; 3]) -> Result<(), GpuError> {
        match workgroups.iter().find(|&&g| g > limit) {
            Some(&too_many) => Err(GpuError::TooManyWorkgroups { groups: too_many, limit }),
            None => Ok(()),
        }
    }

    /// Encodes one dispatch of `kernel` with freshly bound `params` and `buffers`.
    pub fn dispatch<P: Pod>(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        kernel: Kernel,
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<(), GpuError> {
        Self::check_workgroups(ctx, workgroups)?;
        if kernel.is_matmul() {
            // x and w are array<vec4<f32>> in matmul_bias.wgsl: a ragged tail would be unreadable.
            if let Some(b) = buffers.iter().take(2).find(|b| b.size() % 16 != 0) {
                return Err(GpuError::Unsupported(format!(
                    "a matmul input of {} bytes (x and w buffers must be padded to a multiple of 16 bytes)",
                    b.size()
                )));
            }
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        let bytes = bytemuck::bytes_of(params);
        let uniform = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let bind_group = self.bind(ctx, kernel, &uniform, 0, bytes.len() as u64, buffers);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        pass.set_pipeline(self.pipeline(kernel));
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        Ok(())
    }
}
