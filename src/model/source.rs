//! Where a model comes from: the built-in default, a Hugging Face hub repo
//! (`org/name`, optional `@revision`, optional `/file.gguf`), a URL of a
//! directory holding the Hugging Face files (or of one `.gguf` file), or the
//! user's own files. One string names it in the link (`model=…`) and in the
//! `model` attribute of `<attnscope-view>`; [`ModelSource::parse`] reads it
//! and [`ModelSource::key`] writes it back.
//!
//! Hub files are `{hub_base}/{repo}/resolve/{revision}/{file}`; the base is
//! [`HUB_BASE`] unless the page's address says `hub=<base>` (the e2e tests
//! point it at their own server, tests/e2e/hub_server.mjs).

use thiserror::Error;

/// Where hub files come from unless the address names another base.
pub const HUB_BASE: &str = "https://huggingface.co";
/// The revision used when none is named.
pub const MAIN: &str = "main";
/// The longest source string read (a URL or a repo id with its revision).
pub const MAX_SOURCE_LEN: usize = 2048;
/// The longest repo id part (`org` or `name`) the hub allows.
const MAX_REPO_PART: usize = 96;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SourceError {
    #[error("the model name is empty")]
    Empty,
    #[error("the model name is {0} characters long; at most {MAX_SOURCE_LEN} are read")]
    TooLong(usize),
    #[error(
        "“{0}” is not a model this page knows: give a hub repo as org/name (optionally @revision), \
         a URL starting with https:// or http://, or one of: {presets}",
        presets = preset_keys()
    )]
    Unrecognised(String),
    #[error("“{0}”: a hub repo's org and name use letters, digits, '-', '_' and '.' only (at most 96 each, no '..' or '--')")]
    BadRepo(String),
    #[error("“{0}”: a revision uses letters, digits, '-', '_', '.' and '/' only")]
    BadRevision(String),
    #[error("“{0}”: a file in a repo must be a plain .gguf file name")]
    BadFile(String),
    #[error("“{0}”: a URL must not hold spaces, quotes, '#' or control characters")]
    BadUrl(String),
}

/// A model's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The small model shipped with the page (`models/default/`).
    Default,
    /// A hub repo at a revision; `gguf`: one GGUF file in it instead of the
    /// Hugging Face files.
    Hub { repo: String, revision: String, gguf: Option<String> },
    /// A URL: of a directory with `config.json`, `tokenizer.json` and the
    /// safetensors (one file or an index), or of one `.gguf` file.
    Url(String),
    /// The user's own files (picker or drag-and-drop): a link cannot name them.
    Files(String),
}

/// A model the chooser offers by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// What the link says (`model=gpt2`).
    pub key: &'static str,
    pub label: &'static str,
    /// The hub repo, or `None` for the built-in default.
    pub repo: Option<&'static str>,
}

pub const PRESETS: [Preset; 4] = [
    Preset { key: "default", label: "Built-in (2 layers, Austen and Shakespeare)", repo: None },
    Preset { key: "gpt2", label: "GPT-2 small (124M)", repo: Some("openai-community/gpt2") },
    Preset { key: "smollm2-135m", label: "SmolLM2-135M", repo: Some("HuggingFaceTB/SmolLM2-135M") },
    Preset {
        key: "smollm2-135m-instruct",
        label: "SmolLM2-135M-Instruct",
        repo: Some("HuggingFaceTB/SmolLM2-135M-Instruct"),
    },
];

fn preset_keys() -> String {
    PRESETS.iter().map(|p| p.key).collect::<Vec<_>>().join(", ")
}

impl Preset {
    pub fn source(self) -> ModelSource {
        match self.repo {
            None => ModelSource::Default,
            Some(repo) => ModelSource::hub(repo),
        }
    }
}

/// A hub repo's `org` or `name`: the hub's own rule.
fn plain_repo_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= MAX_REPO_PART
        && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !part.starts_with(['-', '.'])
        && !part.ends_with(['-', '.'])
        && !part.contains("..")
        && !part.contains("--")
}

fn plain_revision(rev: &str) -> bool {
    !rev.is_empty()
        && rev.len() <= 256
        && rev.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !rev.split('/').any(|s| s.is_empty() || s == "." || s == "..")
}

impl ModelSource {
    /// `repo` at `main`.
    pub fn hub(repo: &str) -> Self {
        Self::Hub { repo: repo.to_owned(), revision: MAIN.to_owned(), gguf: None }
    }

    /// Reads a link's `model=` or an embed's `model` attribute: a preset key,
    /// `default`, a URL (`https://…` or `http://…`), or `org/name[/file.gguf][@revision]`.
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        let text = text.trim();
        if text.len() > MAX_SOURCE_LEN {
            return Err(SourceError::TooLong(text.len()));
        }
        if text.is_empty() {
            return Err(SourceError::Empty);
        }
        if let Some(preset) = PRESETS.iter().find(|p| p.key.eq_ignore_ascii_case(text)) {
            return Ok(preset.source());
        }
        if text.starts_with("https://") || text.starts_with("http://") {
            if text.chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '#')) {
                return Err(SourceError::BadUrl(text.to_owned()));
            }
            return Ok(Self::Url(text.trim_end_matches('/').to_owned()));
        }
        let (path, revision) = match text.split_once('@') {
            Some((path, rev)) if plain_revision(rev) => (path, rev),
            Some(_) => return Err(SourceError::BadRevision(text.to_owned())),
            None => (text, MAIN),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (repo, gguf) = match parts.as_slice() {
            [org, name] => ([*org, *name], None),
            [org, name, file] if file.to_ascii_lowercase().ends_with(".gguf") => {
                if !plain_repo_part(file) {
                    return Err(SourceError::BadFile(text.to_owned()));
                }
                ([*org, *name], Some((*file).to_owned()))
            }
            [_, _, _] => return Err(SourceError::BadFile(text.to_owned())),
            _ => return Err(SourceError::Unrecognised(text.to_owned())),
        };
        if !repo.iter().all(|p| plain_repo_part(p)) {
            return Err(SourceError::BadRepo(text.to_owned()));
        }
        Ok(Self::Hub { repo: repo.join("/"), revision: revision.to_owned(), gguf })
    }

    /// The string [`ModelSource::parse`] reads back (`None` for local files,
    /// which a link cannot name).
    pub fn key(&self) -> Option<String> {
        match self {
            Self::Default => Some("default".into()),
            Self::Hub { repo, revision, gguf } => {
                if let Some(p) = PRESETS.iter().find(|p| p.repo == Some(repo) && revision == MAIN && gguf.is_none()) {
                    return Some(p.key.into());
                }
                let file = gguf.as_ref().map(|f| format!("/{f}")).unwrap_or_default();
                let rev = if revision == MAIN { String::new() } else { format!("@{revision}") };
                Some(format!("{repo}{file}{rev}"))
            }
            Self::Url(url) => Some(url.clone()),
            Self::Files(_) => None,
        }
    }

    /// A short name for the top bar.
    pub fn display_name(&self) -> String {
        match self {
            Self::Default => "default".into(),
            Self::Hub { repo, revision, gguf } => {
                let file = gguf.as_ref().map(|f| format!(" ({f})")).unwrap_or_default();
                let rev = if revision == MAIN { String::new() } else { format!("@{revision}") };
                format!("{repo}{rev}{file}")
            }
            Self::Url(url) => url.rsplit('/').find(|s| !s.is_empty()).unwrap_or(url).to_owned(),
            Self::Files(name) => name.clone(),
        }
    }

    /// Whether the model is one GGUF file rather than the Hugging Face files.
    pub fn is_gguf(&self) -> bool {
        match self {
            Self::Hub { gguf, .. } => gguf.is_some(),
            Self::Url(url) => url.to_ascii_lowercase().ends_with(".gguf"),
            _ => false,
        }
    }

    /// The URL of `file` of this model (`None` for the default and local
    /// files, which have their own places). A GGUF source has one file: its URL
    /// whatever `file` is.
    pub fn file_url(&self, hub_base: &str, file: &str) -> Option<String> {
        let base = hub_base.trim_end_matches('/');
        match self {
            Self::Hub { repo, revision, gguf } => {
                let file = gguf.as_deref().unwrap_or(file);
                Some(format!("{base}/{repo}/resolve/{revision}/{file}"))
            }
            Self::Url(url) if self.is_gguf() => Some(url.clone()),
            Self::Url(url) => Some(format!("{url}/{file}")),
            Self::Default | Self::Files(_) => None,
        }
    }

    /// What the downloaded files are kept under in Cache Storage (with the
    /// server's ETag of each file): repo and revision, or the URL.
    pub fn cache_key(&self) -> Option<String> {
        match self {
            Self::Hub { repo, revision, gguf } => {
                Some(format!("hub:{repo}@{revision}{}", gguf.as_ref().map(|f| format!("/{f}")).unwrap_or_default()))
            }
            Self::Url(url) => Some(format!("url:{url}")),
            Self::Default | Self::Files(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_to_their_repos_and_back() {
        assert_eq!(ModelSource::parse("default").unwrap(), ModelSource::Default);
        assert_eq!(ModelSource::parse("GPT2").unwrap(), ModelSource::hub("openai-community/gpt2"));
        for p in PRESETS {
            let source = p.source();
            assert_eq!(source.key().as_deref(), Some(p.key));
            assert_eq!(ModelSource::parse(p.key).unwrap(), source);
        }
        // The repo itself names the preset too, and writes back as its key.
        let smol = ModelSource::parse("HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
        assert_eq!(smol.key().as_deref(), Some("smollm2-135m-instruct"));
    }

    #[test]
    fn hub_ids_with_revision_and_gguf_file() {
        let s = ModelSource::parse("org/name@v1.0").unwrap();
        assert_eq!(s, ModelSource::Hub { repo: "org/name".into(), revision: "v1.0".into(), gguf: None });
        assert_eq!(s.key().as_deref(), Some("org/name@v1.0"));
        assert_eq!(
            s.file_url("http://127.0.0.1:9/", "config.json").as_deref(),
            Some("http://127.0.0.1:9/org/name/resolve/v1.0/config.json")
        );
        let g = ModelSource::parse("org/name-GGUF/model.Q8_0.gguf").unwrap();
        assert!(g.is_gguf());
        assert_eq!(
            g.file_url(HUB_BASE, "config.json").as_deref(),
            Some("https://huggingface.co/org/name-GGUF/resolve/main/model.Q8_0.gguf")
        );
        assert_eq!(ModelSource::parse(&g.key().unwrap()).unwrap(), g);
        assert_eq!(
            ModelSource::parse("org/name@refs/pr/1").unwrap().file_url(HUB_BASE, "a").unwrap(),
            "https://huggingface.co/org/name/resolve/refs/pr/1/a"
        );
    }

    #[test]
    fn urls_of_directories_and_gguf_files() {
        let d = ModelSource::parse("https://example.org/models/tiny/").unwrap();
        assert_eq!(d, ModelSource::Url("https://example.org/models/tiny".into()));
        assert!(!d.is_gguf());
        assert_eq!(d.file_url(HUB_BASE, "tokenizer.json").unwrap(), "https://example.org/models/tiny/tokenizer.json");
        assert_eq!(d.display_name(), "tiny");
        let g = ModelSource::parse("http://localhost:8/x/SmolLM2.Q4_1.gguf").unwrap();
        assert!(g.is_gguf());
        assert_eq!(g.file_url(HUB_BASE, "config.json").unwrap(), "http://localhost:8/x/SmolLM2.Q4_1.gguf");
        assert_eq!(d.cache_key().unwrap(), "url:https://example.org/models/tiny");
        assert_eq!(ModelSource::Default.file_url(HUB_BASE, "x"), None);
    }

    #[test]
    fn bad_names_are_refused_with_their_reason() {
        for (text, want) in [
            ("", "empty"),
            ("   ", "empty"),
            ("gpt3", "not a model this page knows"),
            ("a/b/c/d", "not a model this page knows"),
            ("../etc/passwd", "plain .gguf"),
            ("../x", "org and name"),
            ("org/na..me", "org and name"),
            ("org/na me", "org and name"),
            ("org/name@", "revision"),
            ("org/name@../x", "revision"),
            ("org/name@a b", "revision"),
            ("org/name/config.json", "plain .gguf"),
            ("org/name/../x.gguf", "not a model this page knows"),
            ("org/name/.x.gguf", "plain .gguf"),
            ("https://a.org/x y", "URL"),
            ("https://a.org/x#frag", "URL"),
            ("javascript:alert(1)", "not a model this page knows"),
        ] {
            let err = ModelSource::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let long = format!("https://a.org/{}", "x".repeat(MAX_SOURCE_LEN));
        assert!(matches!(ModelSource::parse(&long), Err(SourceError::TooLong(_))));
    }

    #[test]
    fn local_files_have_no_link_key_nor_url() {
        let f = ModelSource::Files("model.gguf".into());
        assert_eq!(f.key(), None);
        assert_eq!(f.file_url(HUB_BASE, "config.json"), None);
        assert_eq!(f.cache_key(), None);
        assert_eq!(f.display_name(), "model.gguf");
    }
}
