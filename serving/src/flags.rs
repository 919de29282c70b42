//! The command-line flags for serving clients, which every step that
//! serves them flattens into its own command line: [`ServeFlags`] (the
//! runtime, who to believe, and [`ConnectionFlags`]' limits).

use std::time::Duration;

use proxy_core::TrustedProxies;

use crate::{ServerOptions, default_max_connections};

/// The longest a seconds flag may say (a year): no deadline overflows.
const MAX_SECS: u64 = operator_input::MAX_DURATION.as_secs();

/// How long a client may take, and how much it may hold.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionFlags {
    /// Close a connection whose request head has not arrived within this
    /// many seconds, counted from accept for the first request (the
    /// slowloris defence).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub header_read_timeout: u64,
    /// Serve at most this many client connections at once; more wait to be
    /// accepted (default: 10,000, or fewer if the open-files limit is low).
    #[arg(long, value_name = "N", value_parser = operator_input::count)]
    pub max_connections: Option<usize>,
    /// At most this many open connections from one client address (an IPv6
    /// /64 counts as one); more are closed at once (default: a quarter of
    /// --max-connections). Raise it behind a load balancer, whose address
    /// every connection shares.
    #[arg(long, value_name = "N", value_parser = operator_input::count)]
    pub max_connections_per_ip: Option<usize>,
    /// Close a client connection that has read nothing of its response for
    /// this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=MAX_SECS))]
    pub send_timeout: u64,
}

impl ConnectionFlags {
    /// The server options these flags describe.
    pub fn server_options(&self) -> ServerOptions {
        let max_connections = self.max_connections.unwrap_or_else(default_max_connections);
        ServerOptions {
            header_read_timeout: Some(Duration::from_secs(self.header_read_timeout)),
            max_connections,
            // A quarter of the global cap unless told: one address never
            // takes every place.
            max_connections_per_address: self
                .max_connections_per_ip
                .unwrap_or((max_connections / 4).max(1)),
            send_timeout: (self.send_timeout > 0).then(|| Duration::from_secs(self.send_timeout)),
            ..ServerOptions::default()
        }
    }
}

/// How a proxy serves its clients: threads, the peers whose forwarded
/// client addresses it believes, and the limits on each client.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeFlags {
    /// Runtime worker threads (default: the cores this process may use).
    #[arg(long, value_name = "N", value_parser = operator_input::count)]
    pub threads: Option<usize>,
    /// A proxy (or load balancer) in front of this one, whose
    /// X-Forwarded-For names the client; repeat for several. The client is
    /// then the right-most address no trusted proxy wrote, for forwarding
    /// headers, allow/deny lists, rate limits and hashing.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The limits every server here puts on its clients.
    #[command(flatten)]
    pub connections: ConnectionFlags,
}

impl ServeFlags {
    /// The runtime `--threads` asks for ([`crate::runtime`]).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        crate::runtime(self.threads)
    }

    /// The peers whose forwarded client addresses are believed.
    pub fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::new(self.trusted_proxies.clone())
    }

    /// Connection settings for the listening side.
    pub fn server_options(&self) -> ServerOptions {
        self.connections.server_options()
    }
}
