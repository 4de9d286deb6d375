//! Turns the edge's committed activity manifest (`schemas/manifest.json`, `edge_activities`)
//! into Rust: one activity definition per entry, so the worker registers an `edge.<name>` type
//! for every activity the edge declares, and nothing else.
//!
//! The SDK registers activities by a type known at compile time (`register_activity::<AD>()`,
//! the name from `AD::definition()`), so the manifest has to become types before the crate
//! compiles. The generated code is data and unit structs only; every behaviour is in
//! `src/edge/`. Two files go to `OUT_DIR`:
//! - `edge_manifest.rs`: the entries (names, schema paths, the schemas' text) and a
//!   definition per entry for workflows to call (`Input`/`Output` = JSON values);
//! - `edge_registered.rs`: the worker's definitions (input decoded as `Untrusted<Value>`), each
//!   running `EdgeActivities::dispatch` with its entry, and the list the worker registers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let schemas = root.join("schemas");
    let manifest_path = schemas.join("manifest.json");
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    let text = std::fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifest_path.display()));
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", manifest_path.display()));
    let entries = match &manifest["edge_activities"] {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(entries) => entries.clone(),
        _ => panic!(
            "edge_activities in {} is not a list",
            manifest_path.display()
        ),
    };

    let mut specs = String::new();
    let mut definitions = String::new();
    let mut registered = String::new();
    let mut register = String::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut types = std::collections::BTreeSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let field = |key: &str| -> String {
            entry[key]
                .as_str()
                .unwrap_or_else(|| panic!("edge_activities[{index}].{key} is not a string"))
                .to_string()
        };
        let name = field("name");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
                && !name.starts_with('.')
                && !name.ends_with('.'),
            "edge_activities[{index}].name `{name}` is not lower-case words joined by dots"
        );
        assert!(
            seen.insert(name.clone()),
            "edge activity `{name}` is declared twice"
        );
        let (input, output) = (field("input"), field("output"));
        let max_attempt_secs = match &entry["max_attempt_secs"] {
            serde_json::Value::Null => "None".to_string(),
            v => format!(
                "Some({})",
                v.as_u64().unwrap_or_else(|| panic!(
                    "edge_activities[{index}].max_attempt_secs is not a whole number"
                ))
            ),
        };
        let schema = |relative: &str| -> PathBuf {
            let path = schemas.join(relative);
            assert!(
                Path::new(relative)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "edge_activities[{index}]: `{relative}` is not a path below schemas/"
            );
            println!("cargo:rerun-if-changed={}", path.display());
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            path
        };
        let (input_file, output_file) = (schema(&input), schema(&output));
        let ty = type_name(&name);
        assert!(
            types.insert(ty.clone()),
            "edge activity `{name}` makes the same Rust type name ({ty}) as another"
        );
        writeln!(
            specs,
            "    EdgeActivitySpec {{ name: {name:?}, activity_type: \"edge.{name}\", input: {input:?}, \
             output: {output:?}, input_schema: include_str!({:?}), output_schema: include_str!({:?}), \
             max_attempt_secs: {max_attempt_secs} }},",
            input_file.display().to_string(),
            output_file.display().to_string(),
        )
        .unwrap();
        writeln!(
            definitions,
            "/// `edge.{name}`: the edge's `{name}` (input `schemas/{input}`, output `schemas/{output}`).\n\
             pub struct {ty};\n\
             impl ::temporalio_common::ActivityDefinition for {ty} {{\n\
             \x20   type Input = ::serde_json::Value;\n\
             \x20   type Output = ::serde_json::Value;\n\
             \x20   fn name(&self) -> &str {{ \"edge.{name}\" }}\n\
             }}\n"
        )
        .unwrap();
        writeln!(
            registered,
            "/// `edge.{name}` as the worker runs it: [`EdgeActivities::dispatch`] with entry {index}.\n\
             pub struct {ty};\n\
             impl ::temporalio_common::ActivityDefinition for {ty} {{\n\
             \x20   type Input = crate::Untrusted<::serde_json::Value>;\n\
             \x20   type Output = ::serde_json::Value;\n\
             \x20   fn name(&self) -> &str {{ \"edge.{name}\" }}\n\
             }}\n\
             impl ::temporalio_sdk::activities::ExecutableActivity for {ty} {{\n\
             \x20   type Implementer = EdgeActivities;\n\
             \x20   const REQUIRES_INSTANCE: bool = true;\n\
             \x20   fn definition() -> Self {{ {ty} }}\n\
             \x20   fn execute(\n\
             \x20       receiver: Option<::std::sync::Arc<EdgeActivities>>,\n\
             \x20       ctx: ::temporalio_sdk::activities::ActivityContext,\n\
             \x20       input: Self::Input,\n\
             \x20   ) -> ::futures::future::BoxFuture<'static, Result<::serde_json::Value, ::temporalio_sdk::activities::ActivityError>> {{\n\
             \x20       Box::pin(EdgeActivities::run(receiver, &MANIFEST[{index}], ctx, input))\n\
             \x20   }}\n\
             }}\n"
        )
        .unwrap();
        writeln!(
            register,
            "    defs.register_activity::<{ty}>(this.clone());"
        )
        .unwrap();
    }

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(
        out.join("edge_manifest.rs"),
        format!(
            "// GENERATED by activities/build.rs from schemas/manifest.json; do not edit.\n\n\
             /// Every entry of `edge_activities`, in the manifest's order.\n\
             pub const MANIFEST: &[EdgeActivitySpec] = &[\n{specs}];\n\n{definitions}"
        ),
    )
    .unwrap();
    std::fs::write(
        out.join("edge_registered.rs"),
        format!(
            "// GENERATED by activities/build.rs from schemas/manifest.json; do not edit.\n\n\
             {registered}\n\
             /// Registers every `edge.*` activity, all dispatched by `this`.\n\
             fn register_generated(\n\
             \x20   this: &::std::sync::Arc<EdgeActivities>,\n\
             \x20   defs: &mut ::temporalio_sdk::activities::ActivityDefinitions,\n\
             ) {{\n\
             \x20   let _ = (&this, &defs);\n{register}}}\n"
        ),
    )
    .unwrap();
}

/// `kv.put` → `KvPut`, `d1.execute` → `D1Execute`.
fn type_name(name: &str) -> String {
    name.split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}
