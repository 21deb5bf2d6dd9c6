//! The CSS size of the canvases the maps are drawn on, kept by a
//! `ResizeObserver` so that drawing never asks for it. Reading an element's
//! `clientWidth` after the page's text changed forces the browser to lay the
//! whole page out there and then, before the frame it was going to lay out
//! anyway: a keystroke paid for two layouts (issue 19). Here the size is read
//! once, when a canvas is first drawn, and then only when the observer says
//! it changed, which it does after the browser's own layout.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

/// Canvas element → its CSS size, with an observer that keeps it current.
pub struct CanvasSizes {
    sizes: js_sys::WeakMap,
    observer: Option<web_sys::ResizeObserver>,
    _on_resize: Closure<dyn FnMut(js_sys::Array)>,
}

impl CanvasSizes {
    /// `on_change` runs after an observed canvas changed size (not for the
    /// first report of a newly observed one, which matches what was read).
    pub fn new(on_change: impl Fn() + 'static) -> Self {
        let sizes = js_sys::WeakMap::new();
        let map = sizes.clone();
        let on_resize = Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
            let mut changed = false;
            for entry in entries.iter() {
                let Ok(entry) = entry.dyn_into::<web_sys::ResizeObserverEntry>() else { continue };
                let Ok(canvas) = entry.target().dyn_into::<web_sys::HtmlElement>() else { continue };
                // Inside the observer's callback layout is done: these reads are free.
                let now = (canvas.client_width(), canvas.client_height());
                if stored(&map, &canvas).is_some_and(|was| was != now) {
                    changed = true;
                }
                store(&map, &canvas, now);
            }
            if changed {
                on_change();
            }
        });
        let observer = web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()).ok();
        Self { sizes, observer, _on_resize: on_resize }
    }

    /// `canvas`'s CSS size in whole pixels (its `clientWidth` and
    /// `clientHeight`): read from the element only the first time.
    pub fn css(&self, canvas: &web_sys::HtmlElement) -> (i32, i32) {
        if let Some(size) = stored(&self.sizes, canvas) {
            return size;
        }
        let size = (canvas.client_width(), canvas.client_height());
        store(&self.sizes, canvas, size);
        if let Some(observer) = &self.observer {
            observer.observe(canvas);
        }
        size
    }
}

impl Drop for CanvasSizes {
    fn drop(&mut self) {
        if let Some(observer) = &self.observer {
            observer.disconnect();
        }
    }
}

fn stored(map: &js_sys::WeakMap, canvas: &web_sys::HtmlElement) -> Option<(i32, i32)> {
    let pair = map.get(canvas);
    let pair = pair.dyn_ref::<js_sys::Array>()?;
    Some((pair.get(0).as_f64()? as i32, pair.get(1).as_f64()? as i32))
}

fn store(map: &js_sys::WeakMap, canvas: &web_sys::HtmlElement, (w, h): (i32, i32)) {
    map.set(canvas, &js_sys::Array::of2(&w.into(), &h.into()));
}
