//! Fetching the files the page needs (the model, the tokenizers).

use thiserror::Error;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::dom::js_message;

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: HTTP {status} {status_text}")]
    Status { url: String, status: u16, status_text: String },
    #[error("{url}: {what}")]
    Unexpected { url: String, what: &'static str },
    #[error("no window")]
    NoWindow,
}

/// GETs `url` and returns its body. Through the page's `window.attnscopeFetch`
/// (index.html) when it is there, so frames of this app loading together
/// share one download.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, FetchError> {
    fetch_with_progress(url, |_, _| {}).await
}

/// [`fetch_bytes`], calling `progress(bytes so far, total)` as the body
/// arrives (total 0 when the server does not say). Only through the page's
/// `attnscopeFetch`; a plain fetch reports once, at the end.
pub async fn fetch_with_progress(url: &str, progress: impl Fn(f64, f64) + 'static) -> Result<Vec<u8>, FetchError> {
    let network = |e: &wasm_bindgen::JsValue| FetchError::Network { url: url.to_owned(), message: js_message(e) };
    let unexpected = |what| FetchError::Unexpected { url: url.to_owned(), what };
    let window = web_sys::window().ok_or(FetchError::NoWindow)?;
    let shared = js_sys::Reflect::get(&window, &"attnscopeFetch".into()).ok();
    if let Some(shared) = shared.and_then(|f| f.dyn_into::<js_sys::Function>().ok()) {
        // Lives until the download ends (dropped after the await below).
        let on_progress = wasm_bindgen::closure::Closure::<dyn Fn(f64, f64)>::new(progress);
        let promise: js_sys::Promise = shared
            .call2(&window, &url.into(), on_progress.as_ref())
            .map_err(|e| network(&e))?
            .dyn_into()
            .map_err(|_| unexpected("attnscopeFetch did not return a promise"))?;
        let buffer = JsFuture::from(promise).await.map_err(|e| network(&e))?;
        drop(on_progress);
        return Ok(js_sys::Uint8Array::new(&buffer).to_vec());
    }
    let response = JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| network(&e))?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| unexpected("not a response"))?;
    if !response.ok() {
        return Err(FetchError::Status {
            url: url.to_owned(),
            status: response.status(),
            status_text: response.status_text(),
        });
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| network(&e))?).await.map_err(|e| network(&e))?;
    let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
    progress(bytes.len() as f64, bytes.len() as f64);
    Ok(bytes)
}
