//! Where a request may go and what it may carry: the checks on a base URL,
//! [`join`] (an adapter's path under the base URL, never out of it) and the
//! headers an adapter may not set.
//!
//! A provider often sits behind a gateway that decodes paths (once or more),
//! honours `;` path parameters, normalises Unicode look-alikes, or routes by
//! headers such as `X-Original-URL`. The checks here refuse what any of those
//! could turn into a path outside the base URL, not only what the URL parser
//! itself would.

use super::errors::quoted;
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
    // Request-routing overrides a gateway may honour to rewrite the path, the
    // host or the method after lmhost checked them.
    "forwarded",
    "via",
    "x-host",
    "x-http-host-override",
    "x-override-url",
    "x-http-method",
    "x-http-method-override",
    "x-method-override",
    // Client-address claims some gateways route or allow-list by.
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "client-ip",
];

/// Prefixes of header families an adapter may not set: proxies' own, forwarding
/// (`X-Forwarded-Host`, `-Proto`, `-Prefix`, …), original/rewritten URL and
/// host (`X-Original-URL`, `X-Rewrite-URL`, …) and a service proxy's routing
/// controls (`x-envoy-original-path`, …).
const RESERVED_PREFIXES: &[&str] = &["proxy-", "x-forwarded-", "x-original-", "x-rewrite-", "x-envoy-"];

/// Whether an adapter may not set header `name` (any case): credentials, routing,
/// framing and the families of [`RESERVED_PREFIXES`] are the host's.
pub(crate) fn is_reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str())
        || crate::backends::is_credential_header(&lower)
        || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

pub(super) fn parse_base(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be http or https, not {}", quoted(url.scheme())));
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
    let refuse = |why: &str| Err(format!("path {}: {why}", quoted(path)));
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
    if let Some(why) = route_problem(route) {
        return refuse(why);
    }
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    let url = Url::parse(&joined).map_err(|e| format!("path {}: not a valid URL path: {e}", quoted(path)))?;
    let base_path = base.path().trim_end_matches('/');
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin || !url.path().starts_with(base_path) || !url.username().is_empty() {
        return refuse("leaves the base URL");
    }
    Ok(url)
}

/// Why the path part of an adapter's URL could leave the base path once a server
/// or gateway decodes or normalises it, if it could.
///
/// `%25` (an encoded `%`) is refused, so one decoding reaches what any number
/// of decodings would: double encodings (`%252e`) end here. The decoded path
/// must be ASCII (Unicode look-alikes of `.`, `/` and `\` such as `．` or `／`,
/// and overlong UTF-8 forms such as `%c0%ae`, are not), hold no control
/// character, `\` or `;`, no more `/` than the raw path (no encoded `/`), and no
/// segment made only of dots.
fn route_problem(route: &str) -> Option<&'static str> {
    if route.contains(';') {
        return Some("`;` path parameters are refused (`..;/` leaves the base path on some servers)");
    }
    let bytes = route.as_bytes();
    for (i, _) in route.match_indices('%') {
        match bytes.get(i + 1..i + 3) {
            Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                if a == &b'2' && b == &b'5' {
                    return Some("an encoded `%` (`%25`) is refused: double encoding could hide `..` or `/`");
                }
            }
            _ => return Some("`%` must start a two-hex-digit escape (`%u002e`-style and bare `%` are refused)"),
        }
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(bytes).collect();
    if !decoded.is_ascii() {
        return Some(
            "non-ASCII characters, raw or encoded, are refused (look-alikes of `.`, `/` or `\\`, overlong forms)",
        );
    }
    if decoded.iter().any(|b| b.is_ascii_control()) {
        return Some("encoded control characters are refused");
    }
    if decoded.contains(&b'\\') || decoded.contains(&b';') {
        return Some("an encoded `\\` or `;` is refused");
    }
    let slashes = |b: &[u8]| b.iter().filter(|&&c| c == b'/').count();
    if slashes(&decoded) != slashes(bytes) {
        return Some("an encoded `/` is refused");
    }
    let dots_only = |segment: &[u8]| {
        let s = segment.trim_ascii();
        !s.is_empty() && s.iter().all(|&c| c == b'.')
    };
    if decoded.split(|&c| c == b'/').any(dots_only) {
        return Some("dot segments are refused, in any encoding");
    }
    None
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
            "/%2e%2e%2f%2e%2e%2fx",
            "/..%2fx",
            "/..;/x",
            "/x;a=b",
            "/%3b",
            "/%2F",
            "/%5C",
            "/%5c",
            "/%252e%252e/x",
            "/%25252e",
            "/%c0%ae%c0%ae/x",
            "/%c0%af",
            "/%e0%80%ae",
            "/%u002e%u002e/x",
            "/%2",
            "/x%",
            "/\u{ff0e}\u{ff0e}/x",
            "/%ef%bc%8e%ef%bc%8e/x",
            "/%ef%bc%8f",
            "/%00",
            "/%0d%0a",
            "/.%2E/x",
            "/%2E./x",
            "/...",
            "/%20../x",
        ] {
            assert!(join(&base, bad).is_err(), "{bad} was accepted");
        }
        for good in [
            "/models/a.b:generateContent",
            "/x%20y",
            "/a%2eb",
            "/v1/chat?alt=sse&x=%2f",
        ] {
            assert!(join(&base, good).is_ok(), "{good} was refused");
        }
        // A huge path is quoted truncated.
        let huge = format!("/{}", "\\".repeat(1 << 20));
        let err = join(&base, &huge).unwrap_err();
        assert!(
            err.len() < 1000 && err.contains(&format!("{} bytes", huge.len())),
            "{}",
            err.len()
        );
        // `@` in a path is a path character, not userinfo.
        assert_eq!(
            join(&base, "/@evil.example").unwrap().host_str(),
            Some("api.example.com")
        );
    }
}

#[cfg(test)]
mod header_tests {
    use super::is_reserved_header;

    #[test]
    fn routing_override_headers_are_reserved() {
        for h in [
            "X-Original-URL",
            "X-Rewrite-URL",
            "X-Forwarded-Host",
            "X-Forwarded-Prefix",
            "x-forwarded-proto",
            "Forwarded",
            "X-HTTP-Method-Override",
            "X-HTTP-Method",
            "X-Method-Override",
            "X-Host",
            "x-envoy-original-path",
            "Proxy-Authorization",
            "X-Real-IP",
            "x-goog-api-key",
        ] {
            assert!(is_reserved_header(h), "{h}");
        }
        for h in ["content-type", "anthropic-version", "accept", "x-request-id"] {
            assert!(!is_reserved_header(h), "{h}");
        }
    }
}
