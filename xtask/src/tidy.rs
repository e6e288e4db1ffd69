//! DESIGN.md's dependency rules, checked from `cargo metadata` so they cannot drift
//! from what actually builds.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Crates that must stay synchronous and deterministic.
const PURE: &[&str] = &[
    "rookery-wire",
    "rookery-tree",
    "rookery-zab",
    "rookery-sim",
    "rookery-check",
];
/// Runtime, I/O and binary-only crates the pure crates must never reach, directly or not.
const BANNED_IN_PURE: &[&str] = &[
    "tokio",
    "sled",
    "tonic",
    "prost",
    "mio",
    "rand",
    "clap",
    "anyhow",
    "opentelemetry",
];

/// (dependency, the only workspace crates allowed to name it directly).
const OWNERS: &[(&str, &[&str])] = &[
    ("sled", &["rookery-storage"]),
    ("tonic", &["rookery-admin", "rookery-server", "rookery"]),
    // rookery-bench and rookery-jepsen are binary tools like xtask (nothing links them
    // into a server).
    (
        "clap",
        &["rookery", "xtask", "rookery-bench", "rookery-jepsen"],
    ),
    (
        "anyhow",
        &["rookery", "xtask", "rookery-bench", "rookery-jepsen"],
    ),
    ("opentelemetry-otlp", &["rookery"]),
];

/// Returns one line per broken rule; empty when everything holds.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    Ok(violations(&meta))
}

fn violations(meta: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let name_of = |id: &str| -> Option<String> {
        packages
            .iter()
            .find(|p| p["id"].as_str() == Some(id))
            .and_then(|p| p["name"].as_str().map(str::to_owned))
    };

    // Direct dependencies (normal and build; dev-dependencies may use anything).
    for pkg in packages
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
    {
        let name = pkg["name"].as_str().unwrap_or_default();
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            for (owned, owners) in OWNERS {
                if dep_name == *owned && !owners.contains(&name) {
                    found.push(format!(
                        "{name} depends on {dep_name}, which only {owners:?} may name"
                    ));
                }
            }
        }
    }

    // Transitive closure of each pure crate's non-dev dependencies, from the resolve graph.
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for pure in PURE {
        let Some(start) = packages
            .iter()
            .find(|p| p["name"].as_str() == Some(pure) && p["source"].is_null())
            .and_then(|p| p["id"].as_str())
        else {
            continue;
        };
        let mut stack = vec![start.to_owned()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(node) = nodes.iter().find(|n| n["id"].as_str() == Some(&id)) else {
                continue;
            };
            for dep in node["deps"].as_array().into_iter().flatten() {
                let normal = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null() || k["kind"].as_str() == Some("build"));
                if !normal {
                    continue;
                }
                if let Some(dep_id) = dep["pkg"].as_str() {
                    if let Some(dep_name) = name_of(dep_id) {
                        if BANNED_IN_PURE.contains(&dep_name.as_str()) {
                            found.push(format!("pure crate {pure} reaches {dep_name}"));
                        }
                    }
                    stack.push(dep_id.to_owned());
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_obeys_dependency_rules() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let v = check(root).unwrap();
        assert!(v.is_empty(), "dependency rules broken:\n{}", v.join("\n"));
    }

    #[test]
    fn a_pure_crate_reaching_tokio_is_caught() {
        // A hand-made metadata graph: rookery-wire -> helper -> tokio.
        let meta = serde_json::json!({
            "workspace_members": ["w"],
            "packages": [
                {"id": "w", "name": "rookery-wire", "source": null, "dependencies": []},
                {"id": "h", "name": "helper", "source": "registry", "dependencies": []},
                {"id": "t", "name": "tokio", "source": "registry", "dependencies": []}
            ],
            "resolve": {"nodes": [
                {"id": "w", "deps": [{"pkg": "h", "dep_kinds": [{"kind": null}]}]},
                {"id": "h", "deps": [{"pkg": "t", "dep_kinds": [{"kind": null}]}]},
                {"id": "t", "deps": []}
            ]}
        });
        assert_eq!(
            violations(&meta),
            vec!["pure crate rookery-wire reaches tokio"]
        );
    }

    #[test]
    fn sled_outside_storage_is_caught() {
        let meta = serde_json::json!({
            "workspace_members": ["s"],
            "packages": [
                {"id": "s", "name": "rookery-server", "source": null,
                 "dependencies": [{"name": "sled", "kind": null}]}
            ],
            "resolve": {"nodes": []}
        });
        assert_eq!(violations(&meta).len(), 1);
    }
}
