//! The UI-free engine: the CPU reference forward (the source of truth for
//! every number) and the `Trace` it fills.

mod attention;
mod mask;
pub mod ops;
mod trace;

pub use attention::{attention_layer_cpu, check_ids, EngineError};
pub use mask::Mask;
pub use trace::{HeadTrace, LayerTrace, Matrix, Trace};
