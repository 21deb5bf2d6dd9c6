//! Zooming the stage heatmap on long texts: the zoom buttons, the line that
//! says which rows and columns are shown, and an overview of the whole map
//! with the shown window framed (click it to move there). The window itself
//! (`render::layout::MapWindow`) lives in the attention panel, which draws and
//! points through it; `None` is the whole map.

use leptos::prelude::*;

use crate::render::layout::MapWindow;

/// How much one step of the buttons or keys zooms.
pub const STEP: f64 = 2.0;

/// The window after a zoom by `factor` about `anchor` (the window's centre when none): `None`
/// once it covers the whole map again.
pub fn zoom_by(
    zoom: Option<MapWindow>,
    dims: (usize, usize),
    factor: f64,
    anchor: Option<(usize, usize)>,
) -> Option<MapWindow> {
    let now = zoom.map_or(MapWindow::full(dims), |w| w.clamped(dims));
    let centre = (now.row0 + now.rows / 2, now.col0 + now.cols / 2);
    let next = now.zoomed(dims, factor, anchor.unwrap_or(centre));
    (!next.is_full(dims)).then_some(next)
}

/// The zoom buttons, the shown range and the overview.
#[component]
pub fn ZoomBar(
    zoom: RwSignal<Option<MapWindow>>,
    #[prop(into)] dims: Signal<(usize, usize)>,
    #[prop(into)] anchor: Signal<Option<(usize, usize)>>,
) -> impl IntoView {
    let step = move |factor: f64| {
        zoom.set(zoom_by(zoom.get_untracked(), dims.get_untracked(), factor, anchor.get_untracked()))
    };
    let shown = move || {
        let d = dims.get();
        let w = zoom.get().map_or(MapWindow::full(d), |w| w.clamped(d));
        if w.is_full(d) {
            format!("The whole map: {} × {}. Zoom in (+, or Ctrl + wheel) to read long texts.", d.0, d.1)
        } else {
            format!(
                "Rows {}–{}, columns {}–{} of {} × {}: drag or use the arrow keys to move, 0 shows all.",
                w.row0,
                w.row0 + w.rows - 1,
                w.col0,
                w.col0 + w.cols - 1,
                d.0,
                d.1
            )
        }
    };
    // The overview: the whole map as a box, the shown window framed inside it.
    let overview = move || {
        let d = dims.get();
        let w = zoom.get().map(|w| w.clamped(d)).filter(|w| !w.is_full(d))?;
        let pct = |a: usize, total: usize| format!("{:.2}%", 100.0 * a as f64 / total.max(1) as f64);
        let on_click = move |ev: web_sys::MouseEvent| {
            let Some(target) =
                ev.current_target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
            else {
                return;
            };
            let (bw, bh) = (f64::from(target.client_width()), f64::from(target.client_height()));
            if bw <= 0.0 || bh <= 0.0 {
                return;
            }
            let at = (
                ((f64::from(ev.offset_y()) / bh) * d.0 as f64) as usize,
                ((f64::from(ev.offset_x()) / bw) * d.1 as f64) as usize,
            );
            let now = zoom.get_untracked().map_or(MapWindow::full(d), |w| w.clamped(d));
            let centre = (now.row0 + now.rows / 2, now.col0 + now.cols / 2);
            let by = (at.0 as isize - centre.0 as isize, at.1 as isize - centre.1 as isize);
            zoom.set(Some(now.panned(d, by)));
        };
        Some(view! {
            <div class="zoom-overview" data-testid="zoom-overview" aria-hidden="true" on:click=on_click
                style:aspect-ratio=format!("{} / {}", d.1.max(1), d.0.max(1))>
                <div class="zoom-frame" style:top=pct(w.row0, d.0) style:left=pct(w.col0, d.1)
                    style:height=pct(w.rows, d.0) style:width=pct(w.cols, d.1)></div>
            </div>
        })
    };
    view! {
        <div class="zoom-bar" role="group" aria-label="Zoom the map">
            <button class="seg zoom-in" title="Zoom in (+)" on:click=move |_| step(STEP)>"Zoom in"</button>
            <button class="seg zoom-out" title="Zoom out (−)" disabled=move || zoom.get().is_none()
                on:click=move |_| step(1.0 / STEP)>"Zoom out"</button>
            <button class="seg zoom-all" title="The whole map (0)" disabled=move || zoom.get().is_none()
                on:click=move |_| zoom.set(None)>"Whole map"</button>
            {overview}
            <span class="hint" data-testid="zoom-shown">{shown}</span>
        </div>
    }
}
