//! Where a request may go and what it may carry: the checks on a base URL,
//! [`join`] (an adapter's path under the base URL, never out of it) and the
//! headers an adapter may not set.

use super::Url;

/// Headers an adapter may not set: credentials, routing and framing are the host's
/// (each backend's own credential headers come from the backend table).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "api-key",
];

/// Whether an adapter may not set header `name` (any case): credentials, routing,
/// framing and every `proxy-` header are the host's.
pub(crate) fn is_reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str())
        || crate::backends::is_credential_header(&lower)
        || lower.starts_with("proxy-")
}

pub(super) fn parse_base(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be http or https, not `{}`", url.scheme()));
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err("must be scheme://host[:port][/path], without query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; put the key in key.json or the environment".into());
    }
    Ok(url)
}

/// The base URL joined with an adapter's path, or why not: the result always
/// keeps the base's scheme, host, port and path prefix.
///
/// ```
/// use lmhost::engines::http::join;
/// let base = lmhost::engines::http::Url::parse("https://api.example.com/v1").unwrap();
/// assert_eq!(join(&base, "/chat/completions").unwrap().as_str(), "https://api.example.com/v1/chat/completions");
/// assert!(join(&base, "https://elsewhere.example/v1/chat").is_err());
/// ```
pub fn join(base: &Url, path: &str) -> Result<Url, String> {
    let refuse = |why: &str| Err(format!("path {path:?}: {why}"));
    if !path.starts_with('/') || path.starts_with("//") {
        return refuse("must start with a single `/`, relative to the base URL (absolute URLs are refused)");
    }
    if path
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || c == '#')
    {
        return refuse("holds whitespace, control characters, `\\` or `#`");
    }
    let route = path.split('?').next().unwrap_or_default();
    if route.split('/').any(|segment| {
        let s = segment.to_ascii_lowercase();
        matches!(s.as_str(), "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e")
    }) {
        return refuse("dot segments are refused");
    }
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    let url = Url::parse(&joined).map_err(|e| format!("path {path:?}: not a valid URL path: {e}"))?;
    let base_path = base.path().trim_end_matches('/');
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin || !url.path().starts_with(base_path) || !url.username().is_empty() {
        return refuse("leaves the base URL");
    }
    Ok(url)
}

pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_paths_stay_under_the_base_url() {
        let base = Url::parse("https://api.example.com/v1").unwrap();
        let ok = join(&base, "/chat/completions").unwrap();
        assert_eq!(ok.as_str(), "https://api.example.com/v1/chat/completions");
        let q = join(&base, "/models/m:streamGenerateContent?alt=sse").unwrap();
        assert_eq!(
            q.as_str(),
            "https://api.example.com/v1/models/m:streamGenerateContent?alt=sse"
        );
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "chat",
            "/../admin",
            "/%2e%2e/admin",
            "/a/./b",
            "/x\\y",
            "/x y",
            "/x#frag",
            "/\r\nHost: evil",
        ] {
            assert!(join(&base, bad).is_err(), "{bad} was accepted");
        }
        // `@` in a path is a path character, not userinfo.
        assert_eq!(
            join(&base, "/@evil.example").unwrap().host_str(),
            Some("api.example.com")
        );
    }
}
