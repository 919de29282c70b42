//! The house's one direction, checked from the manifests rather than trusted.
//!
//! Libraries (everything outside `steps/` but the tour) depend on each other
//! and on kept crates, never on a chapter; chapter N depends on libraries
//! and on the earlier chapters whose lesson it builds on — the lesson chain
//! below, and nothing else: plumbing several chapters need lives in a
//! library. A library that reached up into a chapter would make a change in
//! chapter 1 ripple through every library above it; a chapter that reached
//! into another for plumbing would tie two lessons together for no lesson.
//! And no crate reads another's files (`include!`, `#[path]`): what is
//! shared is a crate the others import, so the arrows here are all there is.

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

/// Which earlier chapters each chapter builds on, for its lesson: step 04
/// balances step 03's proxy, step 05 puts step 04's behind middleware,
/// step 06 and 07 serve step 05's chain with tunnels and TLS, step 09 puts
/// a cache in front of step 04's balanced proxy, and the gateway routes
/// between them all, on hyper's engine or on step 10's, puts step 09's
/// cache in front of the services that ask for one, and runs step 08's
/// proxy for its TCP services. Steps 01, 02, 08 and 10 stand alone.
const LESSON_CHAIN: &[(&str, &[&str])] = &[
    ("step04-load-balance", &["step03-reverse-proxy"]),
    (
        "step05-middleware",
        &["step03-reverse-proxy", "step04-load-balance"],
    ),
    (
        "step06-websocket",
        &["step03-reverse-proxy", "step05-middleware"],
    ),
    (
        "step07-https",
        &[
            "step03-reverse-proxy",
            "step05-middleware",
            "step06-websocket",
        ],
    ),
    (
        "step09-cache",
        &["step03-reverse-proxy", "step04-load-balance"],
    ),
    (
        "step11-gateway",
        &[
            "step03-reverse-proxy",
            "step04-load-balance",
            "step05-middleware",
            "step06-websocket",
            "step07-https",
            "step08-tcp-proxy",
            "step09-cache",
            "step10-fast-path",
        ],
    ),
];

#[test]
fn a_chapter_depends_on_another_only_for_its_lesson() {
    let packages = workspace();
    let is_chapter = |name: &str| {
        packages
            .iter()
            .any(|p| p.name == name && p.chapter.is_some())
    };
    let mut wrong = Vec::new();
    for package in packages.iter().filter(|p| p.chapter.is_some()) {
        let allowed = LESSON_CHAIN
            .iter()
            .find(|(name, _)| *name == package.name)
            .map_or(&[][..], |(_, deps)| deps);
        for (dep, kind) in &package.local_deps {
            if is_chapter(dep) && !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{} -> {dep} ({kind})", package.name));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "chapters reaching into others (move what they need into a library): {wrong:?}"
    );
}

/// A path a source file reads: relative to the file, or (after
/// `env!("CARGO_MANIFEST_DIR")`) to its crate's root, written `<crate>/…`.
const CRATE_ROOT: &str = "<crate>";

/// `include!`, `include_str!`, `include_bytes!` and `#[path]` arguments in
/// `source`, and paths built on `env!("CARGO_MANIFEST_DIR")` that climb out
/// with `/..` (only literal ones: a path built at run time is not followed).
fn included_paths(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let manifest_dir = "env!(\"CARGO_MANIFEST_DIR\")";
    for (at, _) in source.match_indices(manifest_dir) {
        let after = &source[at + manifest_dir.len()..];
        let near = &after[..after.len().min(120)];
        if let Some(start) = near.find("\"/..") {
            let literal = &near[start + 1..];
            let end = literal.find('"').unwrap_or(literal.len());
            found.push(format!("{CRATE_ROOT}{}", &literal[..end]));
        }
    }
    for opener in [
        "include!(\"",
        "include_str!(\"",
        "include_bytes!(\"",
        "#[path = \"",
    ] {
        for (at, _) in source.match_indices(opener) {
            let rest = &source[at + opener.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_owned());
            }
        }
    }
    found
}

#[test]
fn no_crate_reads_another_crates_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let metadata: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"]))
            .expect("cargo metadata prints JSON");
    let crate_dirs: Vec<std::path::PathBuf> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            Path::new(p["manifest_path"].as_str().expect("manifest"))
                .parent()
                .expect("a manifest is in a directory")
                .to_path_buf()
        })
        .collect();
    // The crate a file belongs to: the deepest crate directory above it.
    let owner = |file: &Path| {
        crate_dirs
            .iter()
            .filter(|dir| file.starts_with(dir))
            .max_by_key(|dir| dir.components().count())
            .cloned()
    };
    let mut wrong = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "fuzz" {
                    stack.push(path);
                }
                continue;
            }
            if !name.ends_with(".rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("readable source");
            let mine = owner(&path);
            for included in included_paths(&source) {
                let target = match included.strip_prefix(CRATE_ROOT) {
                    Some(rest) => match &mine {
                        Some(root) => root.join(rest.trim_start_matches('/')),
                        None => continue,
                    },
                    None => path.parent().unwrap().join(&included),
                };
                let target = std::fs::canonicalize(&target).unwrap_or(target);
                if owner(&target) != mine {
                    wrong.push(format!("{} reads {included}", path.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "files read across crates: {wrong:?}");
}

#[test]
fn the_file_reading_check_sees_what_it_must() {
    let source = concat!(
        "include!(\"../../03-reverse-proxy/tests/cases/x.rs\");\n",
        "#[path = \"../other/wire.rs\"]\nmod wire;\n",
        "const EXAMPLE: &str = include_str!(\"../gateway.toml\");\n",
        "let dir = concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/../../middleware/tests\");\n"
    );
    let mut found = included_paths(source);
    found.sort();
    assert_eq!(
        found,
        [
            "../../03-reverse-proxy/tests/cases/x.rs",
            "../gateway.toml",
            "../other/wire.rs",
            "<crate>/../../middleware/tests"
        ]
    );
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

/// A panic while serving one connection ends that connection only, because
/// each connection is a task and tokio catches a panic at the task's edge —
/// unless the profile aborts, which takes the process and every client
/// with it. The release profile unwinds (its cost: bench/README.md).
#[test]
fn the_release_profile_unwinds() {
    let manifest = std::fs::read_to_string("Cargo.toml").expect("the workspace manifest");
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .expect("a release profile");
    let release = release.split("\n[").next().unwrap_or(release);
    assert!(
        !release
            .lines()
            .any(|line| line.trim_start().starts_with("panic")),
        "the release profile sets `panic`:\n{release}"
    );
}
