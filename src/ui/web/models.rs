//! The page's side of `window.attnscopeModels` (www/models.js): Range reads
//! of headers, one download of a model's files with progress and Cancel, the
//! models kept in Cache Storage; and the device limits a plan is checked
//! against, which the test hook can lower.

use std::cell::Cell;

use serde::Deserialize;
use thiserror::Error;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::dom::js_message;
use crate::model::file_bytes::FileBytes;
use crate::model::plan::{Limits, PlanError, Refusal};
use crate::model::source::SourceError;
use crate::model::ModelError;

/// Why a model did not open (the current one stays).
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("the download was cancelled")]
    Cancelled,
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Network(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("{0}")]
    Files(String),
    #[error("{0}")]
    Local(#[from] crate::model::local_files::FilesError),
    #[error("the model loaded, but the page could not run it: {0}")]
    Backend(String),
    #[error("this page has no model loader (www/models.js did not load)")]
    NoLoader,
}

thread_local! {
    /// Limits set through the test hook (`attnscope.setLimits`), over the device's.
    static LIMITS: Cell<Option<Limits>> = const { Cell::new(None) };
}

/// Lowers (or, with `None`, restores) the limits plans are checked against.
pub fn set_limits(limits: Option<Limits>) {
    LIMITS.with(|l| l.set(limits));
}

/// The test hook's limits if set, else `device`.
pub fn limits(device: Limits) -> Limits {
    LIMITS.with(Cell::get).unwrap_or(device)
}

fn loader() -> Result<JsValue, LoadError> {
    let window = web_sys::window().ok_or(LoadError::NoLoader)?;
    js_sys::Reflect::get(&window, &"attnscopeModels".into()).ok().filter(|v| v.is_object()).ok_or(LoadError::NoLoader)
}

fn method(name: &str) -> Result<(JsValue, js_sys::Function), LoadError> {
    let this = loader()?;
    let f = js_sys::Reflect::get(&this, &name.into()).map_err(|_| LoadError::NoLoader)?;
    Ok((this, f.dyn_into().map_err(|_| LoadError::NoLoader)?))
}

/// The error models.js threw, by its `attnscopeKind`.
fn thrown(e: &JsValue) -> LoadError {
    let kind = js_sys::Reflect::get(e, &"attnscopeKind".into()).ok().and_then(|k| k.as_string());
    let message = js_message(e);
    match kind.as_deref() {
        Some("cancelled") => LoadError::Cancelled,
        Some("missing") => LoadError::Missing(message),
        _ => LoadError::Network(message),
    }
}

async fn call(name: &str, args: &[JsValue]) -> Result<JsValue, LoadError> {
    let (this, f) = method(name)?;
    let array: js_sys::Array = args.iter().collect();
    let promise = f.apply(&this, &array).map_err(|e| thrown(&e))?;
    let promise: js_sys::Promise = promise.dyn_into().map_err(|_| LoadError::NoLoader)?;
    JsFuture::from(promise).await.map_err(|e| thrown(&e))
}

fn field(value: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(value, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// Bytes of a file read with a Range request (or from the kept copy).
pub struct RangeRead {
    pub bytes: Vec<u8>,
    /// The whole file's size (0 when the server did not say).
    pub size: u64,
    /// Read from the copy kept on this device (no network).
    pub kept: bool,
}

/// Bytes `start..=end` of `url` of model `key`.
pub async fn range(key: &str, url: &str, start: u64, end: u64) -> Result<RangeRead, LoadError> {
    let value = call("range", &[key.into(), url.into(), (start as f64).into(), (end as f64).into()]).await?;
    let bytes = js_sys::Uint8Array::new(&field(&value, "bytes")).to_vec();
    let size = field(&value, "size").as_f64().unwrap_or(0.0).max(0.0) as u64;
    let kept = field(&value, "kept").as_bool().unwrap_or(false);
    Ok(RangeRead { bytes, size, kept })
}

/// A file to download: its name, URL and size (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSpec {
    pub name: String,
    pub url: String,
    pub size: u64,
}

/// A JavaScript byte array (a downloaded file, a file the user gave), read
/// by range: it stays outside WebAssembly memory, and the loaders copy each
/// tensor's bytes from it straight into the matrix that keeps them.
pub struct JsBytes {
    array: js_sys::Uint8Array,
    size: u32,
}

impl JsBytes {
    /// `value` (an ArrayBuffer or a typed array) as bytes; a file of 4 GiB or
    /// more is refused (no such file fits in WebAssembly memory anyway).
    pub fn new(value: &JsValue, name: &str) -> Result<Self, LoadError> {
        let array = js_sys::Uint8Array::new(value);
        let length = js_sys::Reflect::get(&array, &"length".into()).ok().and_then(|l| l.as_f64()).unwrap_or(0.0);
        let size = u32::try_from(length as u64)
            .map_err(|_| LoadError::Files(format!("{name} is {length} bytes: files of 4 GiB or more are not read")))?;
        Ok(Self { array, size })
    }
}

impl FileBytes for JsBytes {
    fn size(&self) -> u64 {
        self.size.into()
    }

    fn copy_to(&self, at: u64, dst: &mut [u8]) {
        // In range (the caller checked it against `size`, which fits u32).
        let (start, end) = (at as u32, (at + dst.len() as u64) as u32);
        self.array.subarray(start, end).copy_to(dst);
    }
}

/// What a download brought.
pub struct Downloaded {
    /// The files' bytes, outside WebAssembly memory.
    pub files: Vec<JsBytes>,
    /// Whether the model is now kept on this device.
    pub kept: bool,
    /// Why not, when it is not.
    pub note: String,
    /// Bytes that came over the network (0: all from the device).
    pub network: u64,
}

/// One file's progress.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileProgress {
    pub name: String,
    pub done: f64,
    pub size: f64,
}

/// Downloads `files` of model `key`, calling `progress(done, total, per file)`.
pub async fn download(
    key: &str,
    name: &str,
    files: &[FileSpec],
    progress: impl Fn(f64, f64, Vec<FileProgress>) + 'static,
) -> Result<Downloaded, LoadError> {
    let specs = js_sys::Array::new();
    for f in files {
        let o = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&o, &"name".into(), &f.name.as_str().into());
        let _ = js_sys::Reflect::set(&o, &"url".into(), &f.url.as_str().into());
        let _ = js_sys::Reflect::set(&o, &"size".into(), &(f.size as f64).into());
        specs.push(&o);
    }
    let on_progress = Closure::<dyn Fn(f64, f64, String)>::new(move |done, total, detail: String| {
        progress(done, total, serde_json::from_str(&detail).unwrap_or_default())
    });
    let value = call("download", &[key.into(), name.into(), specs.into(), on_progress.as_ref().clone()]).await;
    drop(on_progress);
    let value = value?;
    let bodies: js_sys::Array = field(&value, "files").dyn_into().map_err(|_| LoadError::NoLoader)?;
    let files =
        bodies.iter().zip(files).map(|(body, spec)| JsBytes::new(&body, &spec.name)).collect::<Result<Vec<_>, _>>()?;
    Ok(Downloaded {
        files,
        kept: field(&value, "kept").as_bool().unwrap_or(false),
        note: field(&value, "note").as_string().unwrap_or_default(),
        network: field(&value, "network").as_f64().unwrap_or(0.0) as u64,
    })
}

/// Stops the download in progress (its promise rejects as cancelled).
pub fn cancel() {
    if let Ok((this, f)) = method("cancel") {
        let _ = f.call0(&this);
    }
}

/// A model kept on this device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeptModel {
    pub key: String,
    pub name: String,
    pub bytes: f64,
}

pub async fn list() -> Vec<KeptModel> {
    match call("list", &[]).await {
        Ok(v) => js_sys::JSON::stringify(&v)
            .ok()
            .and_then(|s| s.as_string())
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

pub async fn remove(key: &str) -> Result<(), LoadError> {
    call("remove", &[key.into()]).await.map(|_| ())
}

/// This origin's storage: (bytes used, quota, persisted).
pub async fn estimate() -> (f64, f64, bool) {
    match call("estimate", &[]).await {
        Ok(v) => (
            field(&v, "usage").as_f64().unwrap_or(0.0),
            field(&v, "quota").as_f64().unwrap_or(0.0),
            field(&v, "persisted").as_bool().unwrap_or(false),
        ),
        Err(_) => (0.0, 0.0, false),
    }
}

/// The bytes of a `File` (or any `Blob`), read into a JavaScript buffer
/// (not into WebAssembly memory: the loaders read it by range).
pub async fn file_bytes(file: &web_sys::File) -> Result<JsBytes, LoadError> {
    if file.size() >= 4_294_967_296.0 {
        return Err(LoadError::Files(format!(
            "{} is {} bytes: files of 4 GiB or more are not read",
            file.name(),
            file.size()
        )));
    }
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| LoadError::Files(format!("{}: {}", file.name(), js_message(&e))))?;
    JsBytes::new(&buffer, &file.name())
}
