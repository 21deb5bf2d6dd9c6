//! The forward pass's activation buffers and bind groups, built once per
//! [`Layout`] and reused by every run until the text outgrows the capacity
//! (the buffer pool: typing never allocates).

use wgpu::util::DeviceExt;

use super::kernels::{Kernel, Kernels, PARAM_STRIDE};
use super::weights::{GpuWeights, STORAGE};
use super::{GpuContext, GpuError};
use crate::engine::ops;
use crate::model::ModelConfig;

/// What the buffers can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Tokens the buffers hold; also the row stride of the T×T matrices.
    pub cap: usize,
    /// Whether the T×T matrices (raw, masked, weights) exist.
    pub matrices: bool,
    /// With `matrices`: whether they exist for one block at a time
    /// ([`Buffers::block`]), for a text whose every block's matrices would
    /// outgrow the budget: the forward then runs flash attention, and a
    /// block's matrices are computed from its Q and K when something reads
    /// them ([`super::GpuForward::ensure_block`]).
    pub one_block: bool,
    /// Whether logits for every position have a buffer.
    pub all_logits: bool,
}

/// The most tokens a traced run can hold on a device ([`matrix_caps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatrixCaps {
    /// With every block's T×T matrices kept.
    pub whole: usize,
    /// With one block's at a time.
    pub block: usize,
}

impl Layout {
    /// The layout a run of `t` tokens needs, growing `current` (never shrinking
    /// it, so that switching views keeps the cache): capacity to the next power
    /// of two (at least 16, at most the context). With the T×T matrices: every
    /// block's while `t` is within `caps.whole` (the capacity at most that),
    /// else one block's at a time (the capacity at most `caps.block`).
    pub fn for_run(
        config: &ModelConfig,
        current: Option<Layout>,
        t: usize,
        matrices: bool,
        all_logits: bool,
        caps: MatrixCaps,
    ) -> Self {
        let mut cap = t.next_power_of_two().max(16).min(config.n_positions.max(t));
        let (mut m, mut a) = (matrices, all_logits);
        if let Some(c) = current {
            m |= c.matrices;
            a |= c.all_logits;
            if c.cap >= t {
                cap = c.cap;
            }
        }
        let one_block = m && t > caps.whole;
        if m {
            cap = cap.min(if one_block { caps.block } else { caps.whole }).max(t);
        }
        Layout { cap, matrices: m, one_block, all_logits: a }
    }

    /// Bytes its T×T matrices take: every block's, or one block's.
    pub fn matrix_bytes(&self, config: &ModelConfig) -> u64 {
        match (self.matrices, self.one_block) {
            (false, _) => 0,
            (true, false) => matrix_bytes(config, self.cap),
            (true, true) => 3 * block_bytes(config, self.cap),
        }
    }
}

/// The most bytes a traced layout's T×T matrices (raw scores, masked scores
/// and weights of every head of every block) may take on the GPU in all.
/// WebGPU tells a page nothing of a device's memory, and a laptop's
/// integrated GPU shares the system's: 2 GiB holds GPT-2 small's at 1,114
/// tokens (past its context), SmolLM2-135M's at 814 and a 2-block, 4-head
/// model's at 2,048. Past that, one block's at a time.
pub const MATRIX_BUDGET: u64 = 2 << 30;

/// Bytes of a layout's T×T matrices at capacity `cap`, every block's.
pub fn matrix_bytes(config: &ModelConfig, cap: usize) -> u64 {
    3u64.saturating_mul(config.n_layer as u64).saturating_mul(block_bytes(config, cap))
}

/// Bytes of one block's `[H × cap × cap]` matrix (one of its three).
pub fn block_bytes(config: &ModelConfig, cap: usize) -> u64 {
    let cells = (cap as u64).saturating_mul(cap as u64);
    (config.n_head as u64).saturating_mul(cells).saturating_mul(4)
}

/// The most tokens (up to the context) a traced run can hold on a device
/// whose largest storage binding is `max_binding`, with its T×T matrices
/// within `budget` in all and each block's (`[H × cap × cap]`) within one
/// binding: every block's kept (`whole`), or one block's at a time
/// (`block`). 0 if not one.
pub fn matrix_caps(config: &ModelConfig, max_binding: u64, budget: u64) -> MatrixCaps {
    let most = |fits: &dyn Fn(usize) -> bool| {
        let (mut lo, mut hi) = (0, config.n_positions);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(mid) {
                lo = mid
            } else {
                hi = mid - 1
            }
        }
        lo
    };
    let binds = |t: usize| block_bytes(config, t).next_multiple_of(16) <= max_binding;
    MatrixCaps {
        whole: most(&|t| binds(t) && matrix_bytes(config, t) <= budget),
        block: most(&|t| binds(t) && 3u64.saturating_mul(block_bytes(config, t)) <= budget),
    }
}

/// A bind group and the index of its parameter block in the uniform buffer.
pub struct Slot {
    pub bind_group: wgpu::BindGroup,
    pub index: u32,
}

/// One block's activations, each `[cap × width]` (T×T ones `[H × cap × cap]`).
pub struct LayerBuffers {
    pub ln_1: wgpu::Buffer,
    pub qkv: wgpu::Buffer,
    pub raw: Option<wgpu::Buffer>,
    pub masked: Option<wgpu::Buffer>,
    pub weights: Option<wgpu::Buffer>,
    pub head_out: wgpu::Buffer,
    pub attn_out: wgpu::Buffer,
    pub resid_mid: wgpu::Buffer,
    pub ln_2: wgpu::Buffer,
    pub hidden: wgpu::Buffer,
    pub mlp_out: wgpu::Buffer,
    pub resid_post: wgpu::Buffer,
    /// The Llama family: Q and K before RoPE `[cap × (q_dim + kv_dim)]`
    /// (written by traced runs). Its MLP needs no gate|up buffer: the gated
    /// matmul writes silu(gate)·up straight into `hidden`.
    pub qk_pre: Option<wgpu::Buffer>,
}

pub struct LayerSlots {
    pub qkv: Slot,
    pub rows: Option<Slot>,
    pub flash: Slot,
    pub proj: Slot,
    pub fc: Slot,
    pub mlp_proj: Slot,
    /// The Llama family's RoPE dispatch.
    pub rope: Option<Slot>,
}

pub struct Slots {
    pub embed: Vec<Slot>,
    pub layers: Vec<LayerSlots>,
    pub ln_f: Slot,
    pub logits_last: Option<Vec<Slot>>,
    pub logits_last_traced: Option<Vec<Slot>>,
    pub logits_all: Option<Vec<Slot>>,
    pub logits_all_traced: Option<Vec<Slot>>,
}

/// One block's T×T matrices, `[H × cap × cap]` each, in a layout that keeps
/// one block's at a time, and the head outputs their computation writes
/// (beside the forward's own, which flash attention wrote).
pub struct BlockMatrices {
    pub raw: wgpu::Buffer,
    pub masked: wgpu::Buffer,
    pub weights: wgpu::Buffer,
    pub head_out: wgpu::Buffer,
    /// The block whose matrices they hold for the buffers' current run
    /// (None after any run until one is computed).
    pub holds: std::cell::Cell<Option<usize>>,
    /// After a run that kept the first `rows` tokens of the one before: the
    /// block (`layer`, `rows`) whose first `rows` rows, over their first
    /// `rows` keys, are still the new run's, so computing that block again
    /// writes only what the new tokens change (O(T), as a keystroke's rows
    /// with every block's matrices kept).
    pub reusable: std::cell::Cell<Option<(usize, usize)>>,
    /// The rows the last computation of a block reused (0: it computed them all).
    pub reused_rows: std::cell::Cell<usize>,
}

impl BlockMatrices {
    /// A new run keeps the first `p` rows of the last (0: none, or its
    /// layers are re-run from an intervention): what the block held
    /// stays good for its first `p` rows; nothing is held for the new run.
    pub fn after_run(&self, p: usize) {
        let held = self.holds.take().map(|layer| (layer, usize::MAX)).or(self.reusable.get());
        self.reusable.set(held.map(|(layer, rows)| (layer, rows.min(p))).filter(|&(_, rows)| rows > 0));
    }
}

pub struct Buffers {
    pub layout: Layout,
    pub ids: wgpu::Buffer,
    pub x: wgpu::Buffer,
    pub layers: Vec<LayerBuffers>,
    pub ln_f: wgpu::Buffer,
    pub logits_last: wgpu::Buffer,
    pub logits_all: Option<wgpu::Buffer>,
    pub uniform: wgpu::Buffer,
    pub slots: Slots,
    /// The one block's matrices, in a [`Layout::one_block`] layout.
    pub block: Option<BlockMatrices>,
    pub max_workgroups: u32,
    /// The adapter's bound on one invocation's loop iterations ([`GpuContext::loop_limit`]).
    pub loop_limit: Option<u64>,
    /// Bytes of activation buffers.
    pub bytes: u64,
}

struct Alloc<'a> {
    ctx: &'a GpuContext,
    bytes: u64,
}

impl Alloc<'_> {
    fn buffer(&mut self, name: &str, elements: usize) -> Result<wgpu::Buffer, GpuError> {
        // Whole vec4s: the matmul kernels bind their inputs as array<vec4<f32>>.
        let size = (elements.max(1) as u64 * 4).next_multiple_of(16);
        self.ctx.check_binding(name, size)?;
        self.bytes += size;
        Ok(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size,
            usage: STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }
}

/// Hands out parameter slots in order.
struct Binder<'a> {
    ctx: &'a GpuContext,
    kernels: &'a Kernels,
    uniform: &'a wgpu::Buffer,
    next: u32,
}

impl Binder<'_> {
    fn slot(&mut self, kernel: Kernel, buffers: &[&wgpu::Buffer]) -> Slot {
        let index = self.next;
        self.next += 1;
        let offset = index as u64 * PARAM_STRIDE;
        let bind_group = self.kernels.bind(self.ctx, kernel, self.uniform, offset, PARAM_STRIDE.min(64), buffers);
        Slot { bind_group, index }
    }
}

/// Parameter blocks a layout needs: embed and logits per vocabulary chunk (four
/// logits variants), five per block plus flash and RoPE, and ln_f.
fn slot_count(layers: usize, chunks: usize) -> u64 {
    (chunks * 5 + layers * 7 + 1) as u64
}

impl Buffers {
    pub fn new(
        ctx: &GpuContext,
        kernels: &Kernels,
        config: &ModelConfig,
        weights: &GpuWeights,
        layout: Layout,
        budget: u64,
    ) -> Result<Self, GpuError> {
        let (d, h, cap, v) = (config.n_embd, config.n_head, layout.cap, config.vocab_size);
        // Bounded before any allocation: the matrices grow with the square of the text.
        if layout.matrix_bytes(config) > budget {
            let heads = if layout.one_block { "one block's heads" } else { "every head" };
            return Err(GpuError::OverBudget {
                what: format!("the T×T matrices of {heads} for {cap} tokens"),
                needed: layout.matrix_bytes(config),
                limit: budget,
            });
        }
        let (llama, q_dim, width) = (config.architecture.is_llama_family(), config.q_dim(), config.qkv_dim());
        let mut a = Alloc { ctx, bytes: 0 };
        // RoPE's cos/sin for every position the buffers hold (engine::ops::rope_table).
        let table = if llama { ops::rope_table(&config.rope_inv_freq(), cap) } else { vec![0.0; 4] };
        a.bytes += table.len() as u64 * 4;
        let rope_table = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("rope cos/sin"),
            contents: bytemuck::cast_slice(&table),
            usage: STORAGE,
        });
        let ids = a.buffer("ids", cap)?;
        let x = a.buffer("embeddings", cap * d)?;
        let mut layers = Vec::with_capacity(config.n_layer);
        for l in 0..config.n_layer {
            let name = |what: &str| format!("h.{l}.{what}");
            let square = |a: &mut Alloc, what: &str| -> Result<Option<wgpu::Buffer>, GpuError> {
                (layout.matrices && !layout.one_block).then(|| a.buffer(&name(what), h * cap * cap)).transpose()
            };
            layers.push(LayerBuffers {
                ln_1: a.buffer(&name("ln_1"), cap * d)?,
                qkv: a.buffer(&name("qkv"), cap * width)?,
                raw: square(&mut a, "scores_raw")?,
                masked: square(&mut a, "scores_masked")?,
                weights: square(&mut a, "weights")?,
                head_out: a.buffer(&name("head_out"), cap * q_dim)?,
                attn_out: a.buffer(&name("attn_out"), cap * d)?,
                resid_mid: a.buffer(&name("resid_mid"), cap * d)?,
                ln_2: a.buffer(&name("ln_2"), cap * d)?,
                hidden: a.buffer(&name("mlp_hidden"), cap * config.n_inner)?,
                mlp_out: a.buffer(&name("mlp_out"), cap * d)?,
                resid_post: a.buffer(&name("resid_post"), cap * d)?,
                qk_pre: llama.then(|| a.buffer(&name("qk_pre_rope"), cap * (q_dim + config.kv_dim()))).transpose()?,
            });
        }
        let block = if layout.matrices && layout.one_block {
            Some(BlockMatrices {
                raw: a.buffer("one block's scores_raw", h * cap * cap)?,
                masked: a.buffer("one block's scores_masked", h * cap * cap)?,
                weights: a.buffer("one block's weights", h * cap * cap)?,
                head_out: a.buffer("one block's head_out", cap * q_dim)?,
                holds: std::cell::Cell::new(None),
                reusable: std::cell::Cell::new(None),
                reused_rows: std::cell::Cell::new(0),
            })
        } else {
            None
        };
        let ln_f = a.buffer("ln_f", cap * d)?;
        let logits_last = a.buffer("logits", v)?;
        let logits_all = layout.all_logits.then(|| a.buffer("logits (all positions)", cap * v)).transpose()?;
        let dummy_ro = a.buffer("unused (read)", 1)?;
        let dummy_a = a.buffer("unused (write a)", 1)?;
        let dummy_b = a.buffer("unused (write b)", 1)?;
        let uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("forward params"),
            size: slot_count(config.n_layer, weights.wte.len().max(weights.head().len())) * PARAM_STRIDE,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let mut bind = Binder { ctx, kernels, uniform: &uniform, next: 0 };
        let embed = weights
            .wte
            .iter()
            .map(|c| {
                let kernel = if c.format.is_some() { Kernel::Embed16 } else { Kernel::Embed };
                bind.slot(kernel, &[&ids, &c.buffer, &weights.wpe, &x])
            })
            .collect();
        let mut layer_slots = Vec::with_capacity(layers.len());
        for (l, (lb, wb)) in layers.iter().zip(&weights.blocks).enumerate() {
            let input = if l == 0 { &x } else { &layers[l - 1].resid_post };
            // matmul_bias and matmul_skinny share one bind group layout.
            let mm = Kernel::MatmulBias;
            let rows = match (&lb.raw, &lb.masked, &lb.weights) {
                (Some(raw), Some(masked), Some(w)) => {
                    Some(bind.slot(Kernel::AttentionRows, &[&lb.qkv, raw, masked, w, &lb.head_out]))
                }
                _ => None,
            };
            layer_slots.push(LayerSlots {
                rope: lb.qk_pre.as_ref().map(|pre| bind.slot(Kernel::Rope, &[&lb.qkv, &rope_table, pre])),
                qkv: bind
                    .slot(mm, &[input, &wb.qkv_w.buffer, &wb.qkv_b, &lb.qkv, &dummy_ro, &wb.ln_1, &lb.ln_1, &dummy_b]),
                rows,
                flash: bind.slot(Kernel::FlashAttention, &[&lb.qkv, &lb.head_out]),
                proj: bind.slot(
                    mm,
                    &[
                        &lb.head_out,
                        &wb.proj_w.buffer,
                        &wb.proj_b,
                        &lb.resid_mid,
                        input,
                        &dummy_ro,
                        &dummy_a,
                        &lb.attn_out,
                    ],
                ),
                fc: bind.slot(
                    mm,
                    &[&lb.resid_mid, &wb.fc_w.buffer, &wb.fc_b, &lb.hidden, &dummy_ro, &wb.ln_2, &lb.ln_2, &dummy_b],
                ),
                mlp_proj: bind.slot(
                    mm,
                    &[
                        &lb.hidden,
                        &wb.mlp_proj_w.buffer,
                        &wb.mlp_proj_b,
                        &lb.resid_post,
                        &lb.resid_mid,
                        &dummy_ro,
                        &dummy_a,
                        &lb.mlp_out,
                    ],
                ),
            });
        }
        let last = layers.last().map_or(&x, |l| &l.resid_post);
        let ln_f_slot = bind.slot(Kernel::Layernorm, &[last, &weights.ln_f, &ln_f]);
        let mut logits = |input: &wgpu::Buffer, out: &wgpu::Buffer| -> Vec<Slot> {
            weights
                .head()
                .iter()
                .map(|c| {
                    let lm = [input, &c.buffer, &dummy_ro, out, &dummy_ro, &weights.ln_f, &dummy_a, &dummy_b];
                    bind.slot(Kernel::MatmulBias, &lm)
                })
                .collect()
        };
        let logits_last_slots = Some(logits(last, &logits_last));
        let logits_last_traced = Some(logits(&ln_f, &logits_last));
        let (logits_all_slots, logits_all_traced) = match &logits_all {
            Some(all) => (Some(logits(last, all)), Some(logits(&ln_f, all))),
            None => (None, None),
        };
        debug_assert!(
            bind.next as u64 <= slot_count(config.n_layer, weights.wte.len().max(weights.head().len())),
            "uniform slots overflow"
        );
        let slots = Slots {
            embed,
            layers: layer_slots,
            ln_f: ln_f_slot,
            logits_last: logits_last_slots,
            logits_last_traced,
            logits_all: logits_all_slots,
            logits_all_traced,
        };
        Ok(Self {
            layout,
            ids,
            x,
            layers,
            ln_f,
            logits_last,
            logits_all,
            uniform,
            slots,
            block,
            max_workgroups: ctx.device.limits().max_compute_workgroups_per_dimension,
            loop_limit: ctx.loop_limit(),
            bytes: a.bytes,
        })
    }

    pub fn uniform_size(&self) -> usize {
        self.uniform.size() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traced_tokens_stop_where_the_matrices_outgrow_the_budget_or_a_binding() {
        let (smol, gpt2) = (ModelConfig::smollm2_135m(), ModelConfig::gpt2_small());
        let gib = 1u64 << 30;
        // 810 T×T matrices of f32 for SmolLM2 (30 blocks × 9 heads × 3), 432 for GPT-2 small.
        let caps = matrix_caps(&smol, gib, MATRIX_BUDGET);
        assert_eq!(caps.whole, 814);
        assert!(matrix_bytes(&smol, 814) <= MATRIX_BUDGET && matrix_bytes(&smol, 815) > MATRIX_BUDGET);
        // One block's at a time: 27 matrices, within the budget up to 4,459 tokens (5,461 would bind).
        assert_eq!(caps.block, 4459);
        assert_eq!(matrix_caps(&gpt2, gib, MATRIX_BUDGET).whole, 1024, "GPT-2 small's whole context (1,114 would fit)");
        // A small binding bounds each block's [H × T × T] instead: 12 · 512² · 4 = 12 MiB.
        assert_eq!(matrix_caps(&gpt2, 12 << 20, MATRIX_BUDGET), MatrixCaps { whole: 512, block: 512 });
        assert_eq!(matrix_caps(&gpt2, 0, MATRIX_BUDGET), MatrixCaps { whole: 0, block: 0 });
        // A budget for 3 · 4 · 100² values: one block's for 100 tokens, both blocks' for 70.
        let tiny = ModelConfig::gpt2(2, 4, 128, 2048, 100);
        assert_eq!(matrix_caps(&tiny, gib, MATRIX_BUDGET).whole, 2048, "a small model's whole context of 2,048");
        assert_eq!(matrix_caps(&tiny, gib, 3 * 4 * 100 * 100 * 4), MatrixCaps { whole: 70, block: 100 });
    }

    #[test]
    fn a_traced_layout_grows_to_a_power_of_two_within_the_matrix_caps() {
        let smol = ModelConfig::smollm2_135m();
        let caps = matrix_caps(&smol, 1 << 30, MATRIX_BUDGET);
        let at = |t, current| Layout::for_run(&smol, current, t, true, false, caps);
        assert_eq!(at(300, None).cap, 512);
        assert!(!at(300, None).one_block);
        assert_eq!(at(600, None).cap, caps.whole, "not 1,024: every block's within the budget");
        assert_eq!(at(600, Some(at(300, None))).cap, caps.whole);
        // Past every block's, one block's at a time, to the next power of two.
        let long = at(caps.whole + 1, None);
        assert_eq!((long.cap, long.one_block), (1024, true));
        assert_eq!(long.matrix_bytes(&smol), 3 * block_bytes(&smol, 1024));
        assert_eq!(at(2000, Some(long)), Layout { cap: 2048, matrices: true, one_block: true, all_logits: false });
        // Back within every block's: every block's again (a new layout), not the long one kept.
        assert_eq!(
            at(300, Some(long)),
            Layout { cap: caps.whole, matrices: true, one_block: false, all_logits: false }
        );
        // Past the block cap it holds the text, and the buffers refuse it before allocating.
        let past = at(caps.block + 1, None);
        assert_eq!(past.cap, caps.block + 1);
        assert!(past.matrix_bytes(&smol) > MATRIX_BUDGET || block_bytes(&smol, past.cap) > 1 << 30);
        // Without matrices (generation, benchmarks) the caps do not apply.
        let fast = Layout::for_run(&smol, None, 600, false, false, caps);
        assert_eq!((fast.cap, fast.one_block), (1024, false));
    }
}
