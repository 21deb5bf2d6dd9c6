//! From a [`ModelSource`] to a [`Planned`] download (the safetensors headers
//! read with Range requests, nothing large fetched), and from the downloaded
//! or picked files to a [`Model`].

use crate::model::file_bytes::{read_small, FileBytes};
pub use crate::model::local_files::LocalFiles;
use crate::model::plan::{header_length, FileHeader, Plan, LENGTH_BYTES, MAX_SMALL_FILE_BYTES};
use crate::model::shards;
use crate::model::source::{ModelSource, HUB_BASE};
use crate::model::{Model, ModelConfig};
use crate::ui::web::dom::Pacer;
use crate::ui::web::models::{self as store, FileSpec, JsBytes, LoadError};
use crate::ui::web::query;

/// The largest index file read (a 70B model's is about 100 KB).
const MAX_INDEX_BYTES: u64 = 4 << 20;
const SINGLE: &str = "model.safetensors";
/// The largest config.json read (a real one is 1–2 KB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A model ready to be downloaded: its files and what they will cost.
#[derive(Debug, Clone)]
pub struct Planned {
    pub source: ModelSource,
    /// Its Cache Storage key (repo and revision, or URL).
    pub key: String,
    pub files: Vec<FileSpec>,
    pub plan: Plan,
    /// Every file is kept on this device: opening it needs no download.
    pub kept: bool,
}

/// Where hub models come from: `?hub=` or huggingface.co.
pub fn hub_base() -> String {
    query::current().hub.unwrap_or_else(|| HUB_BASE.to_owned())
}

fn url_of(source: &ModelSource, hub: &str, file: &str) -> Result<String, LoadError> {
    source.file_url(hub, file).ok_or_else(|| LoadError::Files("this model has no address".into()))
}

/// Reads one safetensors file's header with two Range requests.
async fn header(key: &str, name: &str, url: &str, kept: &mut bool) -> Result<FileHeader, LoadError> {
    let first = store::range(key, url, 0, LENGTH_BYTES - 1).await?;
    *kept &= first.kept;
    let length = header_length(name, &first.bytes)?;
    let json = if length == 0 {
        Vec::new()
    } else {
        store::range(key, url, LENGTH_BYTES, LENGTH_BYTES + length - 1).await?.bytes
    };
    if json.len() as u64 != length {
        return Err(crate::model::plan::PlanError::Truncated {
            file: name.to_owned(),
            size: LENGTH_BYTES + json.len() as u64,
            wanted: LENGTH_BYTES + length,
        }
        .into());
    }
    Ok(FileHeader::parse(name, &json, (first.size > 0).then_some(first.size))?)
}

/// A small file's size (a one-byte Range read).
async fn size_of(key: &str, url: &str, kept: &mut bool) -> Result<u64, LoadError> {
    let read = store::range(key, url, 0, 0).await?;
    *kept &= read.kept;
    Ok(read.size)
}

/// Plans `source` (a hub repo or a URL): what to download and what it costs.
pub async fn plan_remote(source: &ModelSource) -> Result<Planned, LoadError> {
    let hub = hub_base();
    let key = source.cache_key().ok_or_else(|| LoadError::Files("this model has no address".into()))?;
    let mut kept = true;
    if source.is_gguf() {
        let url = url_of(source, &hub, "")?;
        let name = url.rsplit('/').next().unwrap_or("model.gguf").to_owned();
        let size = size_of(&key, &url, &mut kept).await?;
        let plan = Plan::gguf(&name, size);
        return Ok(Planned { source: source.clone(), key, files: vec![FileSpec { name, url, size }], plan, kept });
    }
    let single = url_of(source, &hub, SINGLE)?;
    let (headers, mut small) = match header(&key, SINGLE, &single, &mut kept).await {
        Ok(h) => (vec![(h, single)], Vec::new()),
        Err(LoadError::Missing(_)) => {
            // Sharded: the index names the files.
            let index_url = url_of(source, &hub, shards::INDEX)?;
            let index = store::range(&key, &index_url, 0, MAX_INDEX_BYTES - 1).await.map_err(|e| match e {
                LoadError::Missing(m) => {
                    LoadError::Missing(format!("neither model.safetensors nor its index is there ({m})"))
                }
                e => e,
            })?;
            kept &= index.kept;
            let mut headers = Vec::new();
            for file in shards::files(&index.bytes)? {
                let url = url_of(source, &hub, &file)?;
                headers.push((header(&key, &file, &url, &mut kept).await?, url));
            }
            (headers, vec![FileSpec { name: shards::INDEX.into(), url: index_url, size: index.bytes.len() as u64 }])
        }
        Err(e) => return Err(e),
    };
    // config.json is small: read whole now, so an architecture the engine
    // does not run is refused before the weights are fetched.
    let config_url = url_of(source, &hub, "config.json")?;
    let config = store::range(&key, &config_url, 0, MAX_CONFIG_BYTES - 1).await?;
    ModelConfig::from_json(&config.bytes)?;
    kept &= config.kept;
    small.push(FileSpec { name: "config.json".into(), size: config.bytes.len() as u64, url: config_url });
    let tokenizer_url = url_of(source, &hub, "tokenizer.json")?;
    small.push(FileSpec {
        name: "tokenizer.json".into(),
        size: size_of(&key, &tokenizer_url, &mut kept).await?,
        url: tokenizer_url,
    });
    let plan = Plan::new(
        &headers.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
        &small.iter().map(|f| (f.name.clone(), f.size)).collect::<Vec<_>>(),
    )?;
    let mut files = small;
    files.extend(headers.into_iter().map(|(h, url)| FileSpec { name: h.file, url, size: h.bytes }));
    Ok(Planned { source: source.clone(), key, files, plan, kept })
}

/// Builds the model from its downloaded files (in [`Planned::files`]'s order),
/// a block of weights at a time, giving the thread back between them
/// ([`Pacer`]), so the page keeps handling input while a large model is read.
/// The weights are read by range from the downloaded bytes (outside
/// WebAssembly memory): each tensor straight into its matrix.
pub async fn build_remote(planned: &Planned, files: &[JsBytes]) -> Result<Model, LoadError> {
    let name = planned.source.display_name();
    let mut pacer = Pacer::new();
    if planned.source.is_gguf() {
        let file = files.first().ok_or_else(|| LoadError::Files("the GGUF file did not arrive".into()))?;
        return Ok(Model::from_gguf_paced(&name, file, async || pacer.pause().await).await?);
    }
    let small = |n: &str| {
        let file = planned.files.iter().position(|f| f.name == n).and_then(|i| files.get(i));
        let file = file.ok_or_else(|| LoadError::Files(format!("{n} did not arrive")))?;
        read_small(file, MAX_SMALL_FILE_BYTES).ok_or_else(|| {
            LoadError::Files(format!("{n} is {} bytes; at most {MAX_SMALL_FILE_BYTES} are read", file.size()))
        })
    };
    let (config, tokenizer) = (small("config.json")?, small("tokenizer.json")?);
    let shards: Vec<&JsBytes> =
        planned.files.iter().zip(files).filter(|(f, _)| f.name.ends_with(".safetensors")).map(|(_, b)| b).collect();
    Ok(Model::from_shards_paced(&name, &config, &shards, &tokenizer, async || pacer.pause().await).await?)
}
