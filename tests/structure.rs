//! The house's one direction, checked from the manifests rather than trusted.
//!
//! Libraries (everything outside `steps/` but the tour) depend on each other
//! and on kept crates, never on a chapter; chapter N depends on libraries
//! and on earlier chapters. A library that reached up into a chapter would
//! make a change in chapter 1 ripple through every library above it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn cargo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

/// Which chapter a package is, from its folder (`steps/03-…` → 3), or None
/// for a library or the tour.
fn chapter(manifest: &str) -> Option<u32> {
    let dir = Path::new(manifest).parent()?;
    if dir.parent()?.file_name()? != "steps" {
        return None;
    }
    dir.file_name()?.to_str()?.get(..2)?.parse().ok()
}

struct Package {
    name: String,
    chapter: Option<u32>,
    is_tour: bool,
    /// Workspace packages it depends on, with the dependency kind.
    local_deps: Vec<(String, String)>,
}

fn workspace() -> Vec<Package> {
    let metadata: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"]))
            .expect("cargo metadata prints JSON");
    let root = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    let packages = metadata["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|package| {
            let manifest = package["manifest_path"].as_str().expect("manifest path");
            Package {
                name: package["name"].as_str().expect("name").to_owned(),
                chapter: chapter(manifest),
                is_tour: manifest == root,
                local_deps: package["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .filter(|dep| dep["path"].is_string())
                    .map(|dep| {
                        let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
                        (dep["name"].as_str().expect("dep name").to_owned(), kind)
                    })
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn libraries_never_depend_on_a_chapter_and_chapters_only_on_earlier_ones() {
    let packages = workspace();
    let chapter_of = |name: &str| {
        packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} is a workspace package"))
            .chapter
    };
    assert!(
        packages.iter().filter(|p| p.chapter.is_some()).count() >= 7,
        "the steps were found"
    );
    let mut wrong = Vec::new();
    for package in packages.iter().filter(|p| !p.is_tour) {
        for (dep, kind) in &package.local_deps {
            let ok = match (package.chapter, chapter_of(dep)) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(mine), Some(theirs)) => theirs < mine,
            };
            if !ok {
                wrong.push(format!("{} -> {dep} ({kind})", package.name));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows that point up: {wrong:?}");
}

#[test]
fn every_chapter_library_builds_without_the_test_backends() {
    // Step 07 pulls in steps 02 to 06, the ones with the feature (step 01
    // never starts backends), so if real_server is not in its tree with
    // default features off, no chapter library links it. .ci/run also
    // compiles that build.
    let tree = cargo(&[
        "tree",
        "--offline",
        "-p",
        "step07-https",
        "--no-default-features",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]);
    assert!(tree.contains("step03-reverse-proxy"), "{tree}");
    assert!(
        !tree.lines().any(|line| line.starts_with("real_server ")),
        "real_server is linked without the backends feature:\n{tree}"
    );
}

#[test]
fn only_binaries_choose_the_allocator() {
    let mut setters = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs")
                && name != "main.rs"
                && std::fs::read_to_string(&path)
                    .expect("readable source")
                    .contains(concat!("#[global_", "allocator]"))
            {
                setters.push(path.display().to_string());
            }
        }
    }
    assert!(
        setters.is_empty(),
        "libraries setting the allocator: {setters:?}"
    );
}
