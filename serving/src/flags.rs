//! The command-line flags for [`ServerOptions`], which every step that
//! serves clients flattens into its own command line.

use std::time::Duration;

use crate::{ServerOptions, default_max_connections};

/// How long a client may take, and how much it may hold.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionFlags {
    /// Close a connection whose request head has not arrived within this
    /// many seconds, counted from accept for the first request (the
    /// slowloris defence).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Serve at most this many client connections at once; more wait to be
    /// accepted (default: 10,000, or fewer if the open-files limit is low).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// At most this many open connections from one client address (an IPv6
    /// /64 counts as one); more are closed at once (default: a quarter of
    /// --max-connections). Raise it behind a load balancer, whose address
    /// every connection shares.
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Close a client connection that has read nothing of its response for
    /// this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub send_timeout: u64,
}

impl ConnectionFlags {
    /// The server options these flags describe.
    pub fn server_options(&self) -> ServerOptions {
        let max_connections = self.max_connections.unwrap_or_else(default_max_connections);
        ServerOptions {
            header_read_timeout: Some(Duration::from_secs(self.header_read_timeout.max(1))),
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
