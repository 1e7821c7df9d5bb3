//! The example manifests validate against the committed CRD's openAPIV3Schema (structure with a
//! JSON-Schema validator, unknown fields rejected as `kubectl apply` does by default; CEL rules
//! with kube's client-side CEL evaluator), and invalid manifests are rejected.

mod common;

use serde_json::{Value, json};

/// The openAPIV3Schema as a draft-4 JSON Schema that also rejects unknown fields (the API server
/// rejects them under strict field validation, kubectl's default).
/// The root's `apiVersion`, `kind` and `metadata` are implicit in a CRD schema (the API server
/// validates them itself), so they are declared here before closing the objects.
fn strict(schema: &Value) -> Value {
    let mut schema = schema.clone();
    let root = schema["properties"]
        .as_object_mut()
        .expect("root properties");
    root.insert("apiVersion".into(), json!({"type": "string"}));
    root.insert("kind".into(), json!({"type": "string"}));
    root.insert("metadata".into(), json!({"type": "object"}));
    close_objects(&mut schema);
    schema
}

fn close_objects(node: &mut Value) {
    if let Some(map) = node.as_object_mut() {
        if map.contains_key("properties") && !map.contains_key("additionalProperties") {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
        for (_, child) in map.iter_mut() {
            close_objects(child);
        }
    } else if let Some(items) = node.as_array_mut() {
        items.iter_mut().for_each(close_objects);
    }
}

/// Structural errors as `path: message`, then CEL errors as `path: message`.
fn errors(object: &Value) -> Vec<String> {
    let schema = common::committed_schema();
    let validator = jsonschema::draft4::new(&strict(&schema)).expect("the CRD schema compiles");
    let mut found: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if found.is_empty()
        && let Err(cel) = kube::core::cel::Validator::new().validate(&schema, object, None)
    {
        found.extend(
            cel.iter()
                .map(|e| format!("{}: {}", e.field_path, e.message)),
        );
    }
    found
}

fn projections(file: &str) -> Vec<Value> {
    let docs: Vec<Value> = common::yaml_documents(file)
        .into_iter()
        .filter(|d| d["kind"] == "Projection")
        .collect();
    assert!(!docs.is_empty(), "{file} holds a Projection");
    docs
}

#[test]
fn example_manifests_are_valid_projections() {
    for file in [
        "examples/live-projection.yaml",
        "examples/replay.yaml",
        "examples/cross-database-replay.yaml",
        "../charts/examples/full-install/projection.yaml",
    ] {
        for p in projections(file) {
            assert_eq!(p["apiVersion"], "eventline.io/v1alpha1", "{file}");
            let found = errors(&p);
            assert!(found.is_empty(), "{file} is invalid: {found:#?}");
            // And they deserialize into the operator's own types.
            let typed: eventline_operator::Projection =
                serde_json::from_value(p.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(typed.spec.projection, "bank-accounts", "{file}");
        }
    }
}

#[test]
fn the_examples_show_what_they_say() {
    let live = &projections("examples/live-projection.yaml")[0];
    assert!(live["spec"].get("replay").is_none());
    let replay = &projections("examples/replay.yaml")[0];
    assert!(replay["spec"]["replay"]["requestId"].is_string());
    assert!(replay["spec"]["replay"].get("target").is_none());
    let cross = &projections("examples/cross-database-replay.yaml")[0];
    assert_eq!(cross["spec"]["replay"]["target"]["type"], "mysql");
    assert_eq!(cross["spec"]["target"]["type"], "postgres");
}

#[test]
fn the_invalid_manifest_is_rejected_for_each_of_its_faults() {
    let invalid = &projections("tests/data/invalid-projection.yaml")[0];
    let found = errors(invalid).join("\n");
    for (path, what) in [
        ("/spec", "\"image\" is a required property"),
        ("/spec/replicas", "minimum"),
        ("/spec/target/type", "oracle"),
        ("/spec/replay/requestId", "shorter than 1 character"),
        ("/spec/replay/strategy", "Rolling"),
    ] {
        assert!(
            found
                .lines()
                .any(|l| l.starts_with(&format!("{path}: ")) && l.contains(what)),
            "expected an error at {path} mentioning {what:?}; got:\n{found}"
        );
    }
}

fn valid() -> Value {
    projections("examples/live-projection.yaml").remove(0)
}

#[test]
fn unknown_fields_are_rejected() {
    let mut p = valid();
    p["spec"]["replica"] = json!(3);
    let found = errors(&p).join("\n");
    assert!(found.contains("replica"), "{found}");
}

/// A SQLite file in a cluster lives in one pod (read-only root filesystem, a per-pod `/tmp`):
/// a replay's file dies with its Job's pod and no query service can read it. Refused as the
/// target and as a replay's target, saying why.
#[test]
fn cel_rule_sqlite_targets_are_refused_with_the_reason() {
    let why = "sqlite targets are not supported by the operator";
    let mut p = valid();
    p["spec"]["target"]["type"] = json!("sqlite");
    p["spec"]["replicas"] = json!(1);
    let found = errors(&p).join("\n");
    assert!(found.contains(why), "{found}");

    let mut p = projections("examples/cross-database-replay.yaml").remove(0);
    assert_eq!(errors(&p), Vec::<String>::new());
    p["spec"]["replay"]["target"]["type"] = json!("sqlite");
    let found = errors(&p).join("\n");
    assert!(found.contains(why), "{found}");
}

#[test]
fn cel_rule_names_fit_the_replay_job_name() {
    let mut p = valid();
    p["metadata"]["name"] = json!("a".repeat(48));
    let found = errors(&p).join("\n");
    assert!(
        found.contains("metadata.name must be at most 47 characters"),
        "{found}"
    );
    p["metadata"]["name"] = json!("a".repeat(47));
    assert_eq!(errors(&p), Vec::<String>::new());
}

/// Every name and label value the operator derives from the Projection's name, for the longest
/// name the CRD accepts: Job names (they become the pods' `job-name` label) and label values are
/// limited to 63 characters by the API server.
#[test]
fn the_longest_name_the_crd_accepts_fits_every_derived_name_and_label() {
    use eventline_operator::resources;
    let mut manifest = projections("examples/cross-database-replay.yaml").remove(0);
    let longest = (1..=253)
        .rev()
        .find(|n| {
            manifest["metadata"]["name"] = json!("a".repeat(*n));
            errors(&manifest).is_empty()
        })
        .expect("some name is accepted");
    let name = "a".repeat(longest);
    manifest["metadata"]["name"] = json!(name);
    manifest["metadata"]["namespace"] = json!("n".repeat(63));
    manifest["metadata"]["uid"] = json!("uid");
    let p: eventline_operator::Projection = serde_json::from_value(manifest).expect("projection");
    let target = p.spec.target.clone();
    let objects = [
        serde_json::to_value(resources::projector_deployment(&p, &target).expect("deployment")),
        serde_json::to_value(
            resources::replay_job(&p, &target)
                .expect("job")
                .expect("requested"),
        ),
        serde_json::to_value(resources::replay_service_account(&p).expect("sa")),
        serde_json::to_value(resources::replay_role(&p).expect("role")),
        serde_json::to_value(resources::replay_role_binding(&p).expect("binding")),
    ]
    .map(|o| o.expect("json"));
    for object in &objects {
        let object_name = object["metadata"]["name"].as_str().expect("name");
        assert!(
            object_name.len() <= 63,
            "{} {object_name} has {} characters (name {longest} long)",
            object["kind"],
            object_name.len()
        );
        for labels in [
            &object["metadata"]["labels"],
            &object["spec"]["template"]["metadata"]["labels"],
            &object["spec"]["selector"]["matchLabels"],
        ] {
            for (key, value) in labels.as_object().into_iter().flatten() {
                let value = value.as_str().expect("label value");
                assert!(
                    value.len() <= 63,
                    "label {key}={value} is over 63 characters"
                );
            }
        }
    }
}
