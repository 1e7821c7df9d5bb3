//! Prints the `Projection` CRD as YAML: `cargo run -p eventline-operator --bin crdgen > crds/projection.yaml`.

fn main() -> anyhow::Result<()> {
    print!("{}", eventline_operator::crd_yaml()?);
    Ok(())
}
