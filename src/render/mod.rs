//! Drawing: render pipelines that draw straight from GPU storage buffers (no
//! readback), the CPU raster twin, exported figures, chart geometry, and the
//! page's layout arithmetic and label text.

pub mod export;
mod heatmap;
pub mod layout;
pub mod plot;
pub mod raster;
pub mod text;

pub use heatmap::{ColourMap, ColourRange, HeatmapRenderer, Tile};
