//! Render pipelines that draw straight from GPU storage buffers: no readback.

pub mod export;
mod heatmap;
pub mod plot;
pub mod raster;

pub use heatmap::{Colormap, ColourRange, HeatmapRenderer, Panel};
