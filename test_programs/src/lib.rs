//! Tests that need a program from outside (Chromium, `redis-server`,
//! ZooKeeper) and the honest way to leave them out — and, for ZooKeeper,
//! which no test crate starts otherwise, a way to run one ([`zookeeper`]).
//!
//! A test that returns early when its program is missing reports `ok`: a
//! run without Chromium would say the browser test passed. Instead, a
//! crate's build script asks [`detect`] whether the program is on `PATH`;
//! if not, it sets a cfg, and the test carries
//! `#[cfg_attr(not(has_chromium), ignore = "…")]`, so the summary counts it
//! as *ignored*. When the run says the program is required (`.ci/run` sets
//! `PROXY_WORKBENCH_REQUIRE_BROWSER`, `…_REDIS` and `…_ZOOKEEPER`), the cfg is set
//! whatever is found: the test runs, and fails if the program is missing.

use std::path::Path;

pub mod zookeeper;

/// `cfg(has_redis_server)` when `redis-server` is installed or required.
pub fn redis_server() {
    detect(
        "has_redis_server",
        &["redis-server"],
        None,
        "PROXY_WORKBENCH_REQUIRE_REDIS",
    );
}

/// `cfg(has_chromium)` when a Chromium is installed (or named by
/// `CHROMIUM`) or required.
pub fn chromium() {
    detect(
        "has_chromium",
        &["chromium", "chromium-browser", "google-chrome"],
        Some("CHROMIUM"),
        "PROXY_WORKBENCH_REQUIRE_BROWSER",
    );
}

/// `cfg(has_zookeeper)` when Debian's ZooKeeper (its server's jar,
/// `/usr/share/java/zookeeper.jar`, or one `ZOOKEEPER_JAR` names) is
/// installed, or required (`PROXY_WORKBENCH_REQUIRE_ZOOKEEPER`).
pub fn zookeeper() {
    println!("cargo::rustc-check-cfg=cfg(has_zookeeper)");
    println!("cargo::rerun-if-env-changed=ZOOKEEPER_JAR");
    println!("cargo::rerun-if-env-changed=PROXY_WORKBENCH_REQUIRE_ZOOKEEPER");
    let jar = std::env::var_os("ZOOKEEPER_JAR").unwrap_or_else(|| ZOOKEEPER_JAR.into());
    if Path::new(&jar).is_file() || std::env::var_os("PROXY_WORKBENCH_REQUIRE_ZOOKEEPER").is_some()
    {
        println!("cargo::rustc-cfg=has_zookeeper");
    }
}

/// Where Debian's `zookeeper` package puts the server.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// Tell cargo to set `cfg(CFG)` when one of `names` is an executable on
/// `PATH` (or `override_var` names one), or when `require_var` is set; and
/// to run the build script again when any of those changes.
pub fn detect(cfg: &str, names: &[&str], override_var: Option<&str>, require_var: &str) {
    println!("cargo::rustc-check-cfg=cfg({cfg})");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed={require_var}");
    let overridden = override_var.is_some_and(|var| {
        println!("cargo::rerun-if-env-changed={var}");
        std::env::var_os(var).is_some()
    });
    let path = std::env::var_os("PATH").unwrap_or_default();
    if overridden || std::env::var_os(require_var).is_some() || on_path(names, &path) {
        println!("cargo::rustc-cfg={cfg}");
    }
}

/// Is one of `names` an executable file in one of `path`'s directories?
fn on_path(names: &[&str], path: &std::ffi::OsStr) -> bool {
    std::env::split_paths(path).any(|dir| names.iter().any(|name| is_program(&dir.join(name))))
}

fn is_program(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_only_where_it_is_an_executable_file() {
        let dir = std::env::temp_dir().join(format!("test-programs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (program, plain) = (dir.join("present"), dir.join("not-executable"));
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::write(&plain, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(["/nonexistent".into(), dir.clone()]).unwrap();
        assert!(on_path(&["absent", "present"], &path));
        assert!(!on_path(&["absent"], &path));
        assert!(
            !on_path(&["not-executable"], &path),
            "a file that cannot run"
        );
        assert!(
            !on_path(&["present"], std::ffi::OsStr::new("")),
            "an empty PATH"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
