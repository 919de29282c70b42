//! Upstreams as an operator writes them: `http://127.0.0.1:2003/base?x=1`,
//! `h2c://…`, `https://…`, optionally `,weight=N`; a TCP upstream is
//! `HOST:PORT[,weight=N]`.

use hyper::Uri;

/// A URL with one of `schemes` (`"http"`, `"h2c"`, `"https"`) and a host;
/// it may carry a path and query, which requests are joined onto.
pub fn upstream_url(raw: &str, schemes: &[&str]) -> Result<Uri, String> {
    let uri: Uri = raw
        .parse()
        .map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    let known = uri.scheme_str().is_some_and(|s| schemes.contains(&s));
    if !known || uri.host().is_none_or(str::is_empty) {
        let names: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(format!(
            "{raw:?}: an upstream must be a {} URL with a host, e.g. http://127.0.0.1:2003",
            names.join(" or ")
        ));
    }
    if uri.port_u16() == Some(0) {
        return Err(format!("{raw:?}: port 0 is no port to connect to"));
    }
    Ok(uri)
}

/// `URL` or `URL,weight=N` (weight 1 when left out).
pub fn weighted_url(raw: &str, schemes: &[&str]) -> Result<(Uri, u32), String> {
    let (url, weight) = split_weight(raw)?;
    Ok((upstream_url(url, schemes)?, weight))
}

/// `HOST:PORT`, as a `tcp://HOST:PORT` URL (the balancer's upstreams are URLs).
pub fn tcp_address(raw: &str) -> Result<Uri, String> {
    let expected = || format!("{raw:?}: expected HOST:PORT, e.g. 127.0.0.1:6379");
    let uri: Uri = format!("tcp://{raw}").parse().map_err(|_| expected())?;
    match uri.authority() {
        Some(authority)
            if authority.port_u16().is_some_and(|p| p > 0)
                && !authority.host().is_empty()
                && !authority.as_str().contains('@')
                && uri.path() == "/"
                && uri.query().is_none() =>
        {
            Ok(uri)
        }
        _ => Err(expected()),
    }
}

/// `HOST:PORT` or `HOST:PORT,weight=N`.
pub fn weighted_tcp_address(raw: &str) -> Result<(Uri, u32), String> {
    let (address, weight) = split_weight(raw)?;
    Ok((tcp_address(address)?, weight))
}

fn split_weight(raw: &str) -> Result<(&str, u32), String> {
    match raw.split_once(',') {
        None => Ok((raw, 1)),
        Some((url, spec)) => Ok((url, crate::weight(spec)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: &[&str] = &["http"];

    #[test]
    fn an_upstream_has_a_known_scheme_and_a_host() {
        assert!(upstream_url("http://127.0.0.1:2003/base?x=1", HTTP).is_ok());
        for bad in [
            "ftp://host",
            "/just/a/path",
            "https://host",
            "not a url",
            "http://",
            "http://host:0",
        ] {
            assert!(upstream_url(bad, HTTP).is_err(), "{bad}");
        }
        assert!(upstream_url("h2c://127.0.0.1:50051", &["http", "h2c"]).is_ok());
    }

    #[test]
    fn weights_follow_a_comma() {
        let (uri, weight) = weighted_url("http://a:1,weight=3", HTTP).unwrap();
        assert_eq!((uri.to_string().as_str(), weight), ("http://a:1/", 3));
        assert_eq!(weighted_url("http://a:1", HTTP).unwrap().1, 1);
        for bad in ["http://a:1,weight=0", "http://a:1,w=2", "http://a:1,"] {
            assert!(weighted_url(bad, HTTP).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_addresses_need_a_port() {
        assert!(weighted_tcp_address("127.0.0.1:6379,weight=2").is_ok());
        assert!(tcp_address("[::1]:6379").is_ok());
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            ":6379",
            "a:1/x",
            "u@a:1",
            "a:1?q",
        ] {
            assert!(tcp_address(bad).is_err(), "{bad}");
        }
    }
}
