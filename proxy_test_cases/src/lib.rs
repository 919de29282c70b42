//! Tests every HTTP/1 reverse proxy here must pass, in one place that the
//! steps' tests import rather than copy.
//!
//! [`wire`] holds what a test of a proxy needs on the wire (a proxy in front
//! of a real server, raw requests, misbehaving backends); [`http1`] holds
//! the behaviour cases of NOTES chapter 3, each a function of the proxy's
//! [`Launch`](wire::Launch). Step 03 runs them against the clone of Go's
//! ReverseProxy and step 10 against its own engine, with one line each:
//! `proxy_test_cases::http1_behaviours!(support::proxy_to);`.
//!
//! This is a library of tests, not of the proxies: it depends on no
//! chapter, and a chapter depends on it only for its tests.

pub mod http1;
pub mod wire;

/// An RSA key pair made for tests only (RS256 bearer tokens): the public
/// half guards a proxy, the private half signs the tokens a test sends.
pub mod jwt_keys {
    pub const PUBLIC_PEM: &str = include_str!("../fixtures/jwt-test-public.pem");
    pub const PRIVATE_PEM: &str = include_str!("../fixtures/jwt-test-private.pem");

    /// The public key in a file of its own (a flag or a config names a file).
    pub fn public_key_file() -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("workbench-jwt-public-{}.pem", std::process::id()));
        std::fs::write(&path, PUBLIC_PEM).expect("temp dir is writable");
        path
    }
}

#[cfg(test)]
mod tests {
    /// Every case is in the macro, so no step skips one by accident.
    #[test]
    fn the_macro_runs_every_case() {
        let source = include_str!("http1.rs");
        let cases = source.matches("(launch: Launch) {").count();
        assert_eq!(cases, crate::http1::CASES);
        let run = source.matches("$crate::http1::").count();
        assert_eq!(run, cases, "cases the macro does not run");
    }
}
