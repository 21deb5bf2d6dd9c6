//! Render pipelines that draw straight from GPU storage buffers: no readback.

pub mod export;
mod heatmap;
pub mod raster;

pub use heatmap::{Colormap, ColourRange, HeatmapRenderer, Panel};
