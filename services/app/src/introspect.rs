//! `eventline projections`: what an image contains, for people and for tools.

use eventline_core::{ColumnType, Table};
use eventline_domain::Domains;
use serde_json::{Value, json};

use crate::cli::OutputFormat;

/// The domains, projections (with their tables) and process managers of `domains`.
pub(crate) fn describe(domains: &Domains, format: OutputFormat) -> String {
    let document = document(domains);
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(&document)
            .expect("a JSON value built here always serialises"),
        OutputFormat::Text => text(domains),
    }
}

/// The column type as the catalog shows it (`bigint`, `text`, `decimal(12,2)`, ...).
fn type_name(ty: &ColumnType) -> String {
    let debug = format!("{ty:?}");
    match debug.split_once(' ') {
        // Struct-like variants print as `Name { field: value, .. }`: keep the values.
        Some((name, fields)) => {
            let values: Vec<&str> = fields
                .trim_matches(|c| c == '{' || c == '}' || c == ' ')
                .split(", ")
                .filter_map(|field| field.split_once(": ").map(|(_, value)| value))
                .collect();
            format!("{}({})", name.to_lowercase(), values.join(","))
        }
        None => debug.to_lowercase(),
    }
}

fn table_json(table: &Table) -> Value {
    json!({
        "name": table.name,
        "columns": table.columns.iter().map(|c| json!({
            "name": c.name,
            "type": type_name(&c.ty),
            "nullable": c.nullable,
        })).collect::<Vec<_>>(),
        "primary_key": table.primary_key,
        "indexes": table.indexes.iter().map(|i| json!({
            "name": i.name,
            "columns": i.columns,
        })).collect::<Vec<_>>(),
    })
}

fn document(domains: &Domains) -> Value {
    json!({
        "domains": domains.iter().map(|d| json!({
            "name": d.name(),
            "description": d.description(),
            "stream_types": d.stream_types(),
        })).collect::<Vec<_>>(),
        "projections": domains.projections_by_domain().iter().map(|(domain, p)| json!({
            "name": p.name(),
            "domain": domain,
            "stream_types": p.stream_types(),
            "tables": p.tables().iter().map(table_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "process_managers": domains.process_manager_info().iter().map(|m| json!({
            "name": m.name,
            "domain": m.domain,
            "stream_types": m.stream_types,
        })).collect::<Vec<_>>(),
    })
}

fn text(domains: &Domains) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("DOMAINS".into());
    for domain in domains.iter() {
        line(format!(
            "  {:<16} streams: {:<28} {}",
            domain.name(),
            domain.stream_types().join(", "),
            domain.description()
        ));
    }
    line(String::new());
    line("PROJECTIONS".into());
    for (domain, projection) in domains.projections_by_domain() {
        line(format!(
            "  {} (domain {domain}; streams: {})",
            projection.name(),
            projection.stream_types().join(", ")
        ));
        for table in projection.tables() {
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|c| {
                    let null = if c.nullable { "?" } else { "" };
                    format!("{} {}{null}", c.name, type_name(&c.ty))
                })
                .collect();
            line(format!(
                "    table {} [key: {}]: {}",
                table.name,
                table.primary_key.join(", "),
                columns.join(", ")
            ));
        }
    }
    line(String::new());
    line("PROCESS MANAGERS".into());
    let managers = domains.process_manager_info();
    if managers.is_empty() {
        line("  (none)".into());
    }
    for manager in managers {
        line(format!(
            "  {} (domain {}; streams: {})",
            manager.name,
            manager.domain,
            manager.stream_types.join(", ")
        ));
    }
    out.truncate(out.trim_end().len());
    out
}
