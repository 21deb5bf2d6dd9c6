//! attnscope: a small transformer whose every intermediate is visible.
//!
//! One engine, two faces: `model` and `engine` are UI-free and run natively
//! and in wasm; `gpu` runs the same computation as WGSL compute kernels;
//! `render` draws heatmaps straight from GPU buffers; `ui` (wasm only) is the
//! Leptos app, which reads traces and never does math.

pub mod engine;
pub mod escape;
pub mod glossary;
pub mod gpu;
pub mod inspect;
pub mod model;
pub mod pace;
pub mod present;
pub mod render;
pub mod share;
#[cfg(target_arch = "wasm32")]
pub mod ui;
