//! `model.safetensors.index.json`: which files a sharded checkpoint is split
//! into. Only plain file names in the model's own directory are accepted.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ModelError;

/// The index file's name, next to `config.json`.
pub const INDEX: &str = "model.safetensors.index.json";
/// The most shards read (Llama 3 70B has 30).
pub const MAX_SHARDS: usize = 256;

/// The distinct shard files the index's `weight_map` names, in name order.
pub fn files(index_json: &[u8]) -> Result<Vec<String>, ModelError> {
    let value: Value =
        serde_json::from_slice(index_json).map_err(|e| ModelError::ShardIndex(format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| ModelError::ShardIndex("has no `weight_map` object".into()))?;
    let mut files = BTreeSet::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| ModelError::ShardIndex(format!("`{tensor}` maps to {file}, not a file name")))?;
        let plain =
            !file.is_empty() && file.ends_with(".safetensors") && !file.contains(['/', '\\']) && !file.starts_with('.');
        if !plain {
            return Err(ModelError::ShardIndex(format!(
                "`{tensor}` maps to {file:?}: shards must be plain .safetensors file names in the model's directory"
            )));
        }
        files.insert(file.to_owned());
        if files.len() > MAX_SHARDS {
            return Err(ModelError::ShardIndex(format!("names more than {MAX_SHARDS} shard files")));
        }
    }
    if files.is_empty() {
        return Err(ModelError::ShardIndex("`weight_map` is empty".into()));
    }
    Ok(files.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_shard_once() {
        let json = br#"{"metadata": {"total_size": 10}, "weight_map": {"a": "model-00002-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#;
        assert_eq!(files(json).unwrap(), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    }

    #[test]
    fn paths_outside_the_directory_and_bad_indexes_are_refused() {
        for (json, want) in [
            (r#"{"weight_map": {"a": "../secret.safetensors"}}"#, "plain .safetensors file names"),
            (r#"{"weight_map": {"a": "/etc/passwd"}}"#, "plain .safetensors file names"),
            (r#"{"weight_map": {"a": 3}}"#, "not a file name"),
            (r#"{"weight_map": {}}"#, "is empty"),
            (r#"{"weights": {}}"#, "no `weight_map`"),
            ("{", "not valid JSON"),
        ] {
            let err = files(json.as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with("model.safetensors.index.json: ") && err.contains(want), "{json}: {err}");
        }
        let many: Vec<String> = (0..=MAX_SHARDS).map(|i| format!(r#""t{i}": "s{i}.safetensors""#)).collect();
        let json = format!(r#"{{"weight_map": {{{}}}}}"#, many.join(","));
        assert!(files(json.as_bytes()).unwrap_err().to_string().contains("more than 256"));
    }
}
