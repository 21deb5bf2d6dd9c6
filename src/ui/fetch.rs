//! Fetching the model files the page needs.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// GETs `url` and returns its body, or a message naming the URL and what went
/// wrong. Through the page's `window.attnscopeFetch` (index.html) when it is
/// there, so frames of this app loading together share one download.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let shared = js_sys::Reflect::get(&window, &"attnscopeFetch".into()).ok();
    if let Some(shared) = shared.and_then(|f| f.dyn_into::<js_sys::Function>().ok()) {
        let promise: js_sys::Promise = shared
            .call1(&window, &url.into())
            .map_err(|e| format!("{url}: {}", js_message(&e)))?
            .dyn_into()
            .map_err(|_| format!("{url}: attnscopeFetch did not return a promise"))?;
        let buffer = JsFuture::from(promise).await.map_err(|e| format!("{url}: {}", js_message(&e)))?;
        return Ok(js_sys::Uint8Array::new(&buffer).to_vec());
    }
    let response =
        JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| format!("{url}: {}", js_message(&e)))?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| format!("{url}: not a response"))?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {} {}", response.status(), response.status_text()));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| format!("{url}: {}", js_message(&e)))?)
        .await
        .map_err(|e| format!("{url}: {}", js_message(&e)))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

pub fn js_message(value: &wasm_bindgen::JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}
