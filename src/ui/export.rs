//! Export the shown stage for slides and lessons: PNG at 2×, SVG (vector,
//! labelled, every value in a tooltip), CSV, JSON and a standalone HTML
//! snapshot that opens offline, built by
//! `render::export` from the matrix read back from where the heatmap is drawn.

use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

use super::app::AppState;
use super::host::{host, View};
use super::url;
use super::visible;
use crate::engine::{AttentionStage, Matrix};
use crate::render::export::{Figure, Provenance};
use crate::render::raster::value_range;

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

fn js_err(e: JsValue) -> String {
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

/// Saves `href` (a data or blob URL) as `name` through a temporary link.
fn save(href: &str, name: &str) -> Result<(), String> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let a = document
        .create_element("a")
        .map_err(js_err)?
        .dyn_into::<web_sys::HtmlAnchorElement>()
        .map_err(|_| "not a link")?;
    a.set_href(href);
    a.set_download(name);
    a.click();
    Ok(())
}

fn save_text(text: &str, mime: &str, name: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(js_err)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(js_err)?;
    let result = save(&url, name);
    // The download has started from the link; the URL can go once this task ends.
    let revoke = url.clone();
    leptos::task::spawn_local(async move {
        let _ = web_sys::Url::revoke_object_url(&revoke);
    });
    result
}

/// The SVG drawn at twice its size onto a canvas, saved as PNG.
async fn save_png(svg: &str, name: &str) -> Result<(), String> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let image = web_sys::HtmlImageElement::new().map_err(js_err)?;
    image.set_src(&format!("data:image/svg+xml;charset=utf-8,{}", js_sys::encode_uri_component(svg)));
    wasm_bindgen_futures::JsFuture::from(image.decode()).await.map_err(js_err)?;
    let (w, h) = (image.natural_width(), image.natural_height());
    let canvas = document
        .create_element("canvas")
        .map_err(js_err)?
        .dyn_into::<web_sys::HtmlCanvasElement>()
        .map_err(|_| "not a canvas")?;
    canvas.set_width(w * 2);
    canvas.set_height(h * 2);
    let ctx = canvas
        .get_context("2d")
        .map_err(js_err)?
        .ok_or("no 2D context")?
        .dyn_into::<web_sys::CanvasRenderingContext2d>()
        .map_err(|_| "not a 2D context")?;
    ctx.draw_image_with_html_image_element_and_dw_and_dh(&image, 0.0, 0.0, (w * 2) as f64, (h * 2) as f64)
        .map_err(js_err)?;
    save(&canvas.to_data_url_with_type("image/png").map_err(js_err)?, name)
}

/// Builds the figure of the shown view and saves it as `format`.
pub async fn export(state: AppState, format: Format) -> Result<String, String> {
    let host = host().ok_or("the model is not loaded yet")?;
    let view = state.view_untracked();
    if host.shown() == 0 {
        return Err("type some text first".into());
    }
    let (rows, cols, data) = host.read_matrix(view).await?;
    let values = Matrix::from_vec(rows, cols, data);
    // The weights stage hatches what the mask removed: read the masked scores too.
    let masked = if view.stage == AttentionStage::Weights {
        let (r, c, d) = host.read_matrix(View { stage: AttentionStage::ScoresMasked, ..view }).await?;
        Some(Matrix::from_vec(r, c, d))
    } else {
        None
    };
    let range = if view.stage.signed() { value_range(&values, masked.as_ref()) } else { (0.0, 1.0) };
    let tokens: Vec<String> = state.tokens.get_untracked().iter().map(|t| visible(&t.text)).collect();
    let col_labels = if view.stage.square() { tokens.clone() } else { (0..cols).map(|j| format!("d{j}")).collect() };
    let figure = Figure {
        title: format!("{} · layer {} · head {}", view.stage.title(), view.layer, view.head),
        caption: view.stage.caption().to_owned(),
        values: &values,
        masked: masked.as_ref(),
        colormap: view.colormap(),
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
                text: state.text.get_untracked(),
                model: state.model_label.get_untracked(),
                mask: crate::share::mask_text(state.mask.get_untracked()),
                backend: state.backend.get_untracked(),
                link: url::full_page_link(state),
            };
            save_text(&figure.html(&from), "text/html", &name)?
        }
    }
    Ok(name)
}
