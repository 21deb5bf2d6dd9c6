//! An element's width, reported by a `ResizeObserver` after the browser's own
//! layout: first when the element is laid out, then on every change. Reading
//! `clientWidth` when an element is made instead forces a layout of the whole
//! page in that task, before the frame that lays it out anyway (a chart
//! built with a new model's panels cost ~16 ms that way: issue 15's long
//! tasks). The observer stops when the watch is dropped.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

/// Watches one element's `clientWidth` until dropped.
pub struct WidthWatch {
    observer: web_sys::ResizeObserver,
    _on_resize: Closure<dyn FnMut(js_sys::Array)>,
}

impl WidthWatch {
    /// Calls `on_width(clientWidth)` after each layout that sizes `element`
    /// (its first included); `None` where the browser has no `ResizeObserver`.
    pub fn new(element: &web_sys::Element, on_width: impl Fn(f64) + 'static) -> Option<Self> {
        let on_resize = Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
            // The last entry is the newest; inside the callback layout is done, so the read is free.
            let last = entries.iter().filter_map(|e| e.dyn_into::<web_sys::ResizeObserverEntry>().ok()).next_back();
            if let Some(entry) = last {
                on_width(f64::from(entry.target().client_width()));
            }
        });
        let observer = web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()).ok()?;
        observer.observe(element);
        Some(Self { observer, _on_resize: on_resize })
    }
}

impl Drop for WidthWatch {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}
