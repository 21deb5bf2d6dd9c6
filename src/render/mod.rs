//! Render pipelines that draw straight from GPU storage buffers: no readback.

mod heatmap;
pub mod raster;

pub use heatmap::{Colormap, ColourRange, HeatmapRenderer, Panel};
