//! README.md promises two commands; CI must run the second one.

const README: &str = include_str!("../README.md");
const CI: &str = include_str!("../.ci/run");

/// The lines of the README's first fenced block.
fn first_block(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect()
}

#[test]
fn readme_opens_with_the_tour_and_the_test_command() {
    assert_eq!(first_block(README), ["cargo run", "cargo test --workspace"]);
}

#[test]
fn ci_runs_the_readme_test_command() {
    let test_command = first_block(README)[1];
    assert!(
        CI.lines().any(|l| l.trim() == test_command),
        ".ci/run must run `{test_command}`"
    );
}

/// A clone is the whole project: no text or script names a file outside
/// the repository (the workplace's harness, a design document a clone does
/// not have), so every figure and every command works from a clone.
#[test]
fn nothing_in_the_repository_points_outside_it() {
    let files = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    assert!(files.status.success(), "git ls-files failed");
    // Spelled in two pieces, so that this file does not name them itself.
    let outside = [concat!("../", "shared"), concat!("DESIGN", ".md")];
    let mut found = Vec::new();
    for path in String::from_utf8_lossy(&files.stdout).split('\0') {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binary files, and files git knows but the tree lacks
        };
        for name in outside {
            if text.contains(name) {
                found.push(format!("{} names {name}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
