//! The layer table of `ARCHITECTURE.md` is the rule, and the crates' manifests must follow it.
//!
//! The compiler refuses an import of a crate a manifest does not name, so the manifests are what
//! keeps the layers one-way. This test keeps the manifests and the table in step: a crate that
//! names a Ferry crate its row does not allow fails here, as does a crate missing from the table,
//! so a new dependency between layers is a change to the table first, in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The table's rows: crate name -> (folder, the Ferry crates it may use).
fn layer_table() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = text
        .find("## Layers")
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let mut rows = BTreeMap::new();
    for line in text[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        // | layer | crate | folder | may use | what it holds |
        if cells.len() < 4 || !cells[1].starts_with("`ferry") {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        let folder = cells[2].trim_matches('`').trim_end_matches('/').to_string();
        let allowed = cells[3]
            .split(',')
            .map(|c| c.trim().trim_matches('`').to_string())
            .filter(|c| c.starts_with("ferry"))
            .collect();
        rows.insert(name, (folder, allowed));
    }
    assert!(!rows.is_empty(), "the Layers section has no crate rows");
    rows
}

/// The package name and the Ferry crates a manifest depends on (normal, build and dev).
fn manifest(path: &Path) -> (String, BTreeSet<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut name = None;
    let mut section = String::new();
    let mut uses = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if section == "[package]" && key == "name" {
            name = Some(value.trim().trim_matches('"').to_string());
        }
        let is_dependency =
            section.ends_with("dependencies]") && !section.starts_with("[workspace");
        if is_dependency {
            let crate_name = key.split('.').next().unwrap_or(key);
            if crate_name.starts_with("ferry") {
                uses.insert(crate_name.to_string());
            }
        }
    }
    (name.expect("a [package] name"), uses)
}

#[test]
fn every_crate_uses_only_the_layers_its_row_allows() {
    let table = layer_table();
    let mut manifests = vec![root().join("Cargo.toml")];
    let mut folders: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("a crates/ entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    folders.sort();
    manifests.extend(folders.iter().map(|f| f.join("Cargo.toml")));

    let mut seen = BTreeSet::new();
    for path in &manifests {
        let (name, uses) = manifest(path);
        let (folder, allowed) = table
            .get(&name)
            .unwrap_or_else(|| panic!("crate `{name}` has no row in ARCHITECTURE.md's Layers"));
        let actual_folder = path
            .parent()
            .and_then(|p| p.strip_prefix(root()).ok())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if name != "ferry" {
            assert_eq!(
                &actual_folder, folder,
                "ARCHITECTURE.md places `{name}` in {folder}"
            );
        }
        let forbidden: Vec<&String> = uses.difference(allowed).collect();
        assert!(
            forbidden.is_empty(),
            "`{name}` depends on {forbidden:?}, which its row in ARCHITECTURE.md does not allow \
             (it may use {allowed:?})"
        );
        seen.insert(name);
    }
    let missing: Vec<&String> = table.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md lists crates that do not exist: {missing:?}"
    );
}

#[test]
fn the_core_is_at_the_bottom_and_nothing_uses_the_composition_root() {
    let table = layer_table();
    let (_, core) = &table["ferry-core"];
    assert!(
        core.is_empty(),
        "the core uses nothing of Ferry's: {core:?}"
    );
    for (name, (_, allowed)) in &table {
        assert!(
            !allowed.contains("ferry"),
            "`{name}` may not use the composition root"
        );
        assert!(!allowed.contains(name), "`{name}` lists itself");
    }
    // The agent never reaches server code, and the service no transport.
    for (name, server_side) in [
        (
            "ferry-agent",
            ["ferry-store", "ferry-service", "ferry-api"].as_slice(),
        ),
        ("ferry-service", ["ferry-api", "ferry-protocol"].as_slice()),
        (
            "ferry-store",
            ["ferry-service", "ferry-api", "ferry-protocol"].as_slice(),
        ),
    ] {
        let (_, allowed) = &table[name];
        for forbidden in server_side {
            assert!(
                !allowed.contains(*forbidden),
                "`{name}` may not use `{forbidden}`"
            );
        }
    }
}
