//! The UI-free engine: the CPU reference forward (the source of truth for
//! every number) and the `Trace` it fills.

pub mod analysis;
mod block_steps;
pub mod cost;
pub mod extend;
mod forward;
pub mod generate;
pub mod head_finder;
pub mod init;
pub mod intervene;
pub mod kernels;
pub mod kv_cache;
pub mod lens;
mod mask;
pub mod ops;
pub mod positional;
pub mod rank;
pub mod residual;
pub mod sampling;
mod shared_rows;
mod square;
mod stage;
pub mod stepwise;
mod trace;

pub use forward::{attention_cpu, check_ids, forward_cpu, EngineError};
pub use mask::Mask;
pub use shared_rows::SharedRows;
pub use square::{MatrixView, SquareMatrix};
pub use stage::{kv_sharers, AttentionStage};
pub use trace::{most_traced_tokens, trace_bytes, AttentionTrace, HeadTrace, LayerTrace, Matrix, Trace, TraceKeeps};
