//! The demo backends: what a step does when it is given no upstream.
//!
//! `cargo run -p stepNN-…` alone must show the step working, so a step
//! that was given no `--upstream` starts real servers in-process on the
//! ports the course uses (2003, 2004, and 2005 where weights are shown)
//! and sends its requests there. Every step does this the same way, so it
//! is written once, here: the addresses, starting the servers, and the
//! *launch head* — "the upstreams given, or the demo's".
//!
//! The servers themselves are `real_server`, behind the `backends` feature.
//! A chapter's library turns the feature on only through its own default
//! feature, so a crate that uses the library with `default-features =
//! false` links no test server, and a missing upstream is then an error
//! that says why.

use hyper::Uri;
use serving::{Binder, Launched};

/// Two servers: the first takes the requests of a one-upstream step.
pub const PAIR: [&str; 2] = ["127.0.0.1:2003", "127.0.0.1:2004"];

/// Three servers, weighted 1, 2 and 3 by the balancing steps.
pub const TRIO: [&str; 3] = ["127.0.0.1:2003", "127.0.0.1:2004", "127.0.0.1:2005"];

/// Start real servers on `addrs` in-process (tests bind them elsewhere
/// through their `binder`; [`Binder::bound`] says where).
pub async fn start(binder: &Binder, addrs: &[&str]) -> anyhow::Result<Launched> {
    #[cfg(feature = "backends")]
    return real_server::launch_for_step(binder, addrs).await;
    #[cfg(not(feature = "backends"))]
    {
        let _ = (binder, addrs);
        anyhow::bail!(
            "no upstream given, and this build has no test backends to start in-process (the `backends` feature is off)"
        )
    }
}

/// The launch head of a one-upstream step: `given`, or — none given — the
/// first of [`PAIR`], started into `launched`.
pub async fn upstream_or_demo(
    given: Option<Uri>,
    binder: &Binder,
    launched: &mut Launched,
) -> anyhow::Result<Uri> {
    let upstream = match given {
        Some(upstream) => upstream,
        None => {
            let backends = start(binder, &PAIR).await?;
            let first = backends.servers[0].url().parse()?;
            launched.extend(backends);
            first
        }
    };
    tracing::info!("proxying every request to {upstream}");
    Ok(upstream)
}

/// The launch head of a balancing step: the weighted upstreams `given`,
/// or — none given — the servers at `demo`, started into `launched` and
/// written `scheme://ADDR` with weights 1, 2, 3….
pub async fn upstreams_or_demo(
    given: &[(Uri, u32)],
    demo: &[&str],
    scheme: &str,
    binder: &Binder,
    launched: &mut Launched,
) -> anyhow::Result<Vec<(Uri, u32)>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let backends = start(binder, demo).await?;
    let set = backends
        .servers
        .iter()
        .zip(1..)
        .map(|(server, weight)| Ok((format!("{scheme}://{}", server.addr()).parse()?, weight)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if set.len() > 1 {
        tracing::info!(
            "the in-process real servers get weights {}",
            (1..=set.len())
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    launched.extend(backends);
    Ok(set)
}
