//! `crds/projection.yaml` is generated from the Rust types; this test fails when it is stale.

mod common;

#[test]
fn committed_crd_matches_the_generated_one() {
    let generated = eventline_operator::crd_yaml().expect("CRD serializes to YAML");
    let path = common::crate_path("../crds/projection.yaml");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        committed == generated,
        "crds/projection.yaml differs from the CRD generated from operator/api/src/crd.rs.\n\
         Regenerate it with:\n    cargo run -p eventline-operator --bin crdgen > crds/projection.yaml\n\
         and commit the result."
    );
}

#[test]
fn committed_crd_has_the_promised_shape() {
    let crd = common::yaml_documents("../crds/projection.yaml").remove(0);
    assert_eq!(crd["metadata"]["name"], "projections.eventline.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["proj"])
    );
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(columns, ["Phase", "Replay", "Progress", "Lag", "Age"]);
    let conditions =
        &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
}
