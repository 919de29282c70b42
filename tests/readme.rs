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
