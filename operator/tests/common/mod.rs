//! Shared by the integration tests: reading the committed YAML files.
#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// A path relative to the `operator/` crate.
pub fn crate_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every document of a multi-document YAML file, as JSON.
pub fn yaml_documents(relative: &str) -> Vec<Value> {
    let path = crate_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The openAPIV3Schema of the committed CRD (`crds/projection.yaml`).
pub fn committed_schema() -> Value {
    let crd = yaml_documents("../crds/projection.yaml").remove(0);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}
