//! The page's side of `window.attnscopeModels` (www/models.js): Range reads
//! of headers, one download of a model's files with progress and Cancel, the
//! models kept in Cache Storage; and the device limits a plan is checked
//! against, which the test hook can lower.

use std::cell::Cell;

use serde::Deserialize;
use thiserror::Error;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::dom::{js_message, Pacer};
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

/// What a download brought.
pub struct Downloaded {
    pub files: Vec<Vec<u8>>,
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
    let mut files = Vec::with_capacity(bodies.length() as usize);
    for body in bodies.iter() {
        files.push(bytes_paced(&js_sys::Uint8Array::new(&body)).await);
    }
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

/// The bytes of a `File` (or any `Blob`).
pub async fn file_bytes(file: &web_sys::File) -> Result<Vec<u8>, LoadError> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| LoadError::Files(format!("{}: {}", file.name(), js_message(&e))))?;
    Ok(bytes_paced(&js_sys::Uint8Array::new(&buffer)).await)
}

/// Bytes copied into WebAssembly memory per piece by [`bytes_paced`].
const COPY_PIECE: u32 = 8 << 20;

/// A JavaScript byte array copied into WebAssembly memory a piece at a time,
/// the thread given back between slices ([`Pacer`]): a 100 MB model copied
/// at once was a task of ~100 ms.
async fn bytes_paced(array: &js_sys::Uint8Array) -> Vec<u8> {
    let len = array.length();
    let mut out = Vec::with_capacity(len as usize);
    let mut pacer = Pacer::new();
    let mut at = 0;
    while at < len {
        let end = at.saturating_add(COPY_PIECE).min(len);
        out.resize(end as usize, 0);
        array.subarray(at, end).copy_to(&mut out[at as usize..]);
        at = end;
        pacer.pause().await;
    }
    out
}
