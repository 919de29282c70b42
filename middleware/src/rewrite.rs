//! URL rewriting: the seed's "url 重写".
//!
//! Public URLs and upstream URLs often differ: `/api/v1/users` outside,
//! `/users` inside. Rules are `REGEX=REPLACEMENT` pairs tried in order on the
//! path; the first that matches rewrites it (`$1` … are capture groups) and
//! the rest are skipped. `--strip-prefix /api` is a ready-made rule that
//! removes a prefix. The query string is kept as it is. A rewrite that
//! would produce an invalid URL leaves the request unchanged and logs why.

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response};
use proxy_core::ProxyBody;
use regex::Regex;
use tracing::{debug, warn};

use crate::{Ctx, Middleware, Next};

#[derive(Debug, Clone)]
pub struct Rule {
    pattern: Regex,
    replacement: String,
}

/// Two rules are the same rule when they are written the same: a reload
/// keeps a service whose rules did not change.
impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.replacement == other.replacement
    }
}

impl std::str::FromStr for Rule {
    type Err = String;

    /// `REGEX=REPLACEMENT`, split at the last `=` (regexes may contain one).
    fn from_str(raw: &str) -> Result<Self, String> {
        let (pattern, replacement) = raw
            .rsplit_once('=')
            .ok_or_else(|| format!("{raw:?}: expected REGEX=REPLACEMENT"))?;
        let pattern =
            Regex::new(pattern).map_err(|e| format!("{pattern:?} is not a regex: {e}"))?;
        Ok(Rule {
            pattern,
            replacement: replacement.to_owned(),
        })
    }
}

pub struct Rewrite {
    rules: Vec<Rule>,
}

impl Rule {
    /// The rule that removes `prefix` from the start of a path
    /// (`--strip-prefix /api`: `/api/users` → `/users`, `/api` → `/`).
    pub fn strip_prefix(prefix: &str) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Rule {
            pattern: Regex::new(&format!("^{}(/.*)?$", regex::escape(prefix)))
                .expect("an escaped literal is a valid regex"),
            replacement: "$1".to_owned(),
        }
    }
}

impl Rewrite {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// The rewritten path, if a rule matched. A rule that empties the path
    /// leaves `/`.
    pub fn apply(&self, path: &str) -> Option<String> {
        self.rules
            .iter()
            .find(|rule| rule.pattern.is_match(path))
            .map(|rule| {
                rule.pattern
                    .replace(path, rule.replacement.as_str())
                    .into_owned()
            })
            .map(|path| {
                if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                }
            })
    }
}

impl Middleware for Rewrite {
    fn handle<'a>(
        &'a self,
        mut req: Request<Incoming>,
        ctx: &'a Ctx,
        next: Next<'a>,
    ) -> BoxFuture<'a, Response<ProxyBody>> {
        if let Some(path) = self.apply(req.uri().path()) {
            let new = match req.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            match PathAndQuery::try_from(new.as_str()) {
                Ok(path_and_query) => {
                    debug!("rewrote {} to {new}", req.uri());
                    let mut parts = req.uri().clone().into_parts();
                    parts.path_and_query = Some(path_and_query);
                    if let Ok(uri) = hyper::Uri::from_parts(parts) {
                        *req.uri_mut() = uri;
                    }
                }
                Err(e) => warn!("rewrite of {} gave an invalid URL {new:?}: {e}", req.uri()),
            }
        }
        next.run(req, ctx)
    }
}
