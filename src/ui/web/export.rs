//! Export the shown stage for slides and lessons: PNG at 2×, SVG (vector,
//! labelled, every value in a tooltip), CSV, JSON and a standalone HTML
//! snapshot that opens offline, built by
//! `render::export` from the matrix read back from where the heatmap is drawn.

use leptos::prelude::*;
use thiserror::Error;
use wasm_bindgen::{JsCast, JsValue};

use super::dom::js_message;
use super::share;
use crate::engine::AttentionStage;
use crate::render::export::{Figure, Provenance};
use crate::render::raster::{value_range, Hidden};
use crate::render::text::visible;
use crate::ui::backend::{Backend, BackendError};
use crate::ui::state::{PageState, View};

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("type some text first")]
    NothingShown,
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The browser refused a step (a blob, a link, an image, a canvas).
    #[error("{0}")]
    Browser(String),
}

impl From<JsValue> for ExportError {
    fn from(e: JsValue) -> Self {
        ExportError::Browser(js_message(&e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
    Csv,
    Json,
    Html,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::Png, Format::Svg, Format::Csv, Format::Json, Format::Html];

    pub fn label(self) -> &'static str {
        match self {
            Format::Png => "PNG ×2",
            Format::Svg => "SVG",
            Format::Csv => "CSV",
            Format::Json => "JSON",
            Format::Html => "HTML snapshot",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
        }
    }
}

/// Saves `href` (a data or blob URL) as `name` through a temporary link.
fn save(href: &str, name: &str) -> Result<(), ExportError> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or(ExportError::Browser("no document".into()))?;
    let a = document
        .create_element("a")?
        .dyn_into::<web_sys::HtmlAnchorElement>()
        .map_err(|_| ExportError::Browser("not a link".into()))?;
    a.set_href(href);
    a.set_download(name);
    a.click();
    Ok(())
}

pub fn save_text(text: &str, mime: &str, name: &str) -> Result<(), ExportError> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let result = save(&url, name);
    // The download has started from the link; the URL can go once this task ends.
    let revoke = url.clone();
    leptos::task::spawn_local(async move {
        let _ = web_sys::Url::revoke_object_url(&revoke);
    });
    result
}

/// The SVG drawn at twice its size onto a canvas, saved as PNG.
pub async fn save_png(svg: &str, name: &str) -> Result<(), ExportError> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or(ExportError::Browser("no document".into()))?;
    let image = web_sys::HtmlImageElement::new()?;
    image.set_src(&format!("data:image/svg+xml;charset=utf-8,{}", crate::escape::url_component(svg)));
    wasm_bindgen_futures::JsFuture::from(image.decode()).await?;
    let (w, h) = (image.natural_width(), image.natural_height());
    let canvas = document
        .create_element("canvas")?
        .dyn_into::<web_sys::HtmlCanvasElement>()
        .map_err(|_| ExportError::Browser("not a canvas".into()))?;
    canvas.set_width(w * 2);
    canvas.set_height(h * 2);
    let ctx = canvas
        .get_context("2d")?
        .ok_or(ExportError::Browser("no 2D context".into()))?
        .dyn_into::<web_sys::CanvasRenderingContext2d>()
        .map_err(|_| ExportError::Browser("not a 2D context".into()))?;
    ctx.draw_image_with_html_image_element_and_dw_and_dh(&image, 0.0, 0.0, (w * 2) as f64, (h * 2) as f64)?;
    save(&canvas.to_data_url_with_type("image/png")?, name)
}

/// Builds the figure of the shown view and saves it as `format`.
pub async fn export(state: PageState, backend: Backend, format: Format) -> Result<String, ExportError> {
    let view = state.view_untracked();
    if backend.shown() == 0 {
        return Err(ExportError::NothingShown);
    }
    let values = backend.read_matrix(view).await?;
    // The weights stage hatches what the mask removed: read the masked scores too.
    let masked = if view.stage == AttentionStage::Weights {
        Some(backend.read_matrix(View { stage: AttentionStage::ScoresMasked, ..view }).await?)
    } else {
        None
    };
    let cols = values.cols;
    let range = if view.stage.signed() { value_range(&values, masked.as_ref().map(Hidden::Cells)) } else { (0.0, 1.0) };
    let tokens: Vec<String> = state.outputs.tokens.get_untracked().iter().map(|t| visible(&t.text)).collect();
    let col_labels = if view.stage.square() { tokens.clone() } else { (0..cols).map(|j| format!("d{j}")).collect() };
    let figure = Figure {
        title: format!("{} · layer {} · head {}", view.stage.title(), view.layer, view.head),
        caption: view.stage.caption().to_owned(),
        values: &values,
        masked: masked.as_ref(),
        colour_map: view.colour_map(),
        range,
        row_labels: tokens,
        col_labels,
    };
    let name = format!("attnscope-{}-L{}H{}.{}", view.stage.key(), view.layer, view.head, format.extension());
    match format {
        Format::Svg => save_text(&figure.svg(), "image/svg+xml", &name)?,
        Format::Csv => save_text(&figure.csv(), "text/csv", &name)?,
        Format::Json => save_text(&figure.json(), "application/json", &name)?,
        Format::Png => save_png(&figure.svg(), &name).await?,
        Format::Html => {
            let from = Provenance {
                text: state.selection.text.get_untracked(),
                model: state.status.model_label.get_untracked(),
                mask: crate::share::mask_text(state.selection.mask.get_untracked()),
                backend: state.status.backend_label.get_untracked(),
                link: share::full_page_link(state),
            };
            save_text(&figure.html(&from), "text/html", &name)?
        }
    }
    Ok(name)
}
