//! The workbench's own answers: the chapters' code, re-exported under the
//! exercises' names, or written here where no chapter needs it.

pub mod ch02 {
    pub use step02_reverse_proxy_minimal::join_paths;
}

pub mod ch03 {
    pub use step03_reverse_proxy::te_has_trailers as client_accepts_trailers;
}

pub mod ch04 {
    use std::sync::Arc;

    use load_balance::{Strategy, Upstream};

    /// The first healthy upstream, in the order given.
    pub struct FirstAvailable {
        upstreams: Vec<Arc<Upstream>>,
    }

    impl FirstAvailable {
        pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
            Self { upstreams }
        }
    }

    impl Strategy for FirstAvailable {
        fn pick(&self, _key: &[u8]) -> Option<&Arc<Upstream>> {
            self.upstreams.iter().find(|upstream| upstream.is_healthy())
        }
    }
}
