//! The GPU backend: wgpu device setup, one compute pipeline per kernel in
//! `shaders/`, the whole forward pass with weights resident and prefix (KV)
//! reuse, and readback of just the slices the screen needs.

mod context;
mod contributions;
mod forward;
mod head_finder;
mod intervene;
mod kernels;
mod layout;
mod lens;
mod one_block;
mod readback;
mod stages;
mod timing;
mod trace;
mod weights;
pub(crate) mod wgsl;

pub use context::{past_loop_limit, GpuContext, GpuError};
pub use contributions::ContributionsRead;
pub use forward::{GpuForward, RunOptions, RunStats};
pub use head_finder::{PaintedScoresRead, TemplateScoresRead};
pub use intervene::{GpuIntervened, SweepRead};
pub use kernels::{
    AttentionParams, AttentionShape, EmbedParams, Half, HeadScoresParams, Kernel, Kernels, LayernormParams,
    MatmulFusion, MatmulParams, RopeParams, RowNormsParams, TopKParams, ValueRangeParams, FLASH_ROWS_MAX_M,
    MAX_FLASH_D_HEAD, MAX_ROWS_D_HEAD, MAX_TOP_K, SKINNY_MAX_ROWS,
};
pub use layout::{block_bytes, matrix_bytes, matrix_caps, MatrixCaps, MATRIX_BUDGET};
pub use lens::LensRead;
pub use readback::{begin_read, read_f32, PendingRead};
pub use stages::{CellRead, GpuMatrix, MatrixRead, Stage, TopK, TopKRead};
pub use timing::DispatchTimes;
pub use weights::{half_format, pack_half, rows_per_chunk, GpuWeights, PackedWeight};
