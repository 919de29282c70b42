//! Which service a request belongs to: by host and path prefix, the
//! longest prefix winning, a service naming the host winning over one that
//! takes any host.

use hyper::Uri;
use hyper::http::uri::PathAndQuery;

/// What a service matches on.
#[derive(Debug, Clone)]
pub struct Match {
    pub host: Option<String>,
    pub path_prefix: String,
}

impl Match {
    /// Does a request for `host` (lower case, no port) and `path` (in its
    /// canonical form, `crate::canonical`) fall here? A prefix matches whole
    /// segments: `/api` takes `/api`, `/api/x` and `/api;v=2/x` (a path
    /// parameter ends a segment's name too), not `/apix`.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(wanted) = &self.host
            && host != Some(wanted.as_str())
        {
            return false;
        }
        let prefix = self.path_prefix.trim_end_matches('/');
        match path.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with(';'),
            None => false,
        }
    }
}

/// The index of the service for `host` and `path` among `services`, if any.
pub fn route(services: &[Match], host: Option<&str>, path: &str) -> Option<usize> {
    services
        .iter()
        .enumerate()
        .filter(|(_, service)| service.matches(host, path))
        .max_by_key(|(_, service)| {
            (
                service.path_prefix.trim_end_matches('/').len(),
                service.host.is_some(),
            )
        })
        .map(|(index, _)| index)
}

/// `uri` without `prefix` at the start of its path (`/api/x?y` → `/x?y`,
/// `/api` → `/`, `/api;v=2/x` → `/;v=2/x`).
pub fn strip(uri: &Uri, prefix: &str) -> Uri {
    let prefix = prefix.trim_end_matches('/');
    let rest = uri.path().strip_prefix(prefix).unwrap_or(uri.path());
    let path = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    with_path(uri, &path)
}

/// `uri` with its path replaced by `path`, the query kept.
pub fn with_path(uri: &Uri, path: &str) -> Uri {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(host: Option<&str>, prefix: &str) -> Match {
        Match {
            host: host.map(str::to_owned),
            path_prefix: prefix.to_owned(),
        }
    }

    #[test]
    fn the_longest_prefix_wins_and_prefixes_match_whole_segments() {
        let services = [
            service(None, "/"),
            service(None, "/api"),
            service(None, "/api/v2"),
        ];
        assert_eq!(route(&services, None, "/"), Some(0));
        assert_eq!(route(&services, None, "/apix"), Some(0));
        assert_eq!(route(&services, None, "/api"), Some(1));
        assert_eq!(route(&services, None, "/api/users"), Some(1));
        assert_eq!(route(&services, None, "/api/v2/users"), Some(2));
    }

    #[test]
    fn a_service_naming_the_host_wins_over_one_that_takes_any() {
        let services = [service(None, "/"), service(Some("api.example.com"), "/")];
        assert_eq!(route(&services, Some("api.example.com"), "/x"), Some(1));
        assert_eq!(route(&services, Some("www.example.com"), "/x"), Some(0));
        let only_host = [service(Some("api.example.com"), "/")];
        assert_eq!(route(&only_host, Some("other"), "/"), None);
        assert_eq!(route(&only_host, None, "/"), None);
    }

    #[test]
    fn stripping_leaves_a_path() {
        let uri: Uri = "/api/users?id=7".parse().unwrap();
        assert_eq!(strip(&uri, "/api"), "/users?id=7");
        assert_eq!(strip(&"/api".parse().unwrap(), "/api"), "/");
        assert_eq!(strip(&"/api/".parse().unwrap(), "/api/"), "/");
    }
}
