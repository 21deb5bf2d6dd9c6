//! Render pipelines that draw straight from GPU storage buffers: no readback.

mod heatmap;

pub use heatmap::{HeatmapParams, HeatmapRenderer};
