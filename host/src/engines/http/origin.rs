//! Where the user's API key may go: a key is bound to origins the user (or
//! lmhost itself) chose, so that a registry entry cannot send it to a host of
//! its own.
//!
//! The key (and the organisation header) goes with a request only when the base
//! URL's origin (scheme, host and port, compared parsed, never as text prefixes)
//! is one of:
//! - the backend's default URL (the backend table);
//! - the `base_url` of the backend's key.json section (clemcore's convention);
//! - an origin in that section's `trusted_origins`;
//! - or any origin, when the `base_url` comes from a layer the user trusts:
//!   the packaged registry (ours), or a registry file marked trusted
//!   (`--trusted-registry`, `$LMHOST_TRUSTED_REGISTRIES`).
//!
//! Anything else (an entry of another registry file, a `base_url` an ad-hoc
//! query sets, or adds to the entry it names) gets no key. A backend that needs
//! one then fails to load with [`withheld_message`]'s explanation; one whose key
//! is optional (`openai_compatible`) sends the request without it.

use super::errors::quoted;
use super::Url;
use crate::backends::Backend;
use crate::credentials::Credential;
use crate::registry::{ModelSpec, SpecSource};

/// Where the base URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BaseFrom {
    /// The entry's (or the query's) `base_url`.
    Entry,
    /// The `base_url` of the backend's key.json section.
    KeyFile,
    /// The backend table's default.
    Default,
}

/// Why the key of `credential` must not go to `base`, or `None` when it may
/// (or when there is no key to send).
pub(super) fn withheld_message(
    spec: &ModelSpec,
    backend: &Backend,
    credential: &Credential,
    base: &Url,
    from: BaseFrom,
) -> Option<String> {
    if credential.api_key.is_none() && credential.organization.is_none() {
        return None;
    }
    if from != BaseFrom::Entry {
        return None;
    }
    let origin = base.origin();
    let user_origins = backend
        .default_base_url
        .into_iter()
        .chain(credential.base_url.as_deref())
        .chain(credential.trusted_origins.iter().map(String::as_str));
    if user_origins
        .filter_map(|u| Url::parse(u).ok())
        .any(|u| u.origin() == origin)
    {
        return None;
    }
    let layer = spec.layer_of("base_url");
    let where_from = match layer {
        SpecSource::Packaged { .. } => return None,
        SpecSource::File { path, .. } if credential.trusts_registry(path) => return None,
        SpecSource::File { .. } => format!("registry file {layer}"),
        SpecSource::Query => "the query (an ad-hoc spec, or a key the query added to its entry)".to_string(),
    };
    let section = backend.key_section().unwrap_or(backend.name);
    let key_from = credential.source.as_deref().unwrap_or("key.json");
    let file = credential
        .file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "key.json".into());
    let shown = quoted(&origin.ascii_serialization());
    Some(format!(
        "the `{}` key (from {key_from}) is not sent to {shown}: that `base_url` comes from {where_from}, and a \
         registry entry may direct a key only to the backend's default origin, key.json's `base_url` or an origin \
         you trust. If {shown} should get your key, add \"trusted_origins\": [{shown}] to the `{section}` section \
         of {file}, or load the registry file with `--trusted-registry FILE` ($LMHOST_TRUSTED_REGISTRIES)",
        backend.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::find_backend;
    use crate::credentials::Secret;

    fn spec(base_url: &str, source: SpecSource) -> ModelSpec {
        let entry = serde_json::json!({"model_name": "m", "backend": "openai", "base_url": base_url});
        ModelSpec::from_entry(entry.as_object().unwrap(), source).unwrap()
    }

    fn keyed() -> Credential {
        Credential {
            api_key: Some(Secret::new("sk-test")),
            source: Some("env:OPENAI_API_KEY".into()),
            ..Credential::default()
        }
    }

    fn file(path: &str) -> SpecSource {
        SpecSource::File {
            path: path.into(),
            index: 0,
        }
    }

    #[test]
    fn a_key_goes_only_to_origins_the_user_chose() {
        let openai = find_backend("openai").unwrap();
        let check = |url: &str, source: SpecSource, cred: &Credential| {
            let base = Url::parse(url).unwrap();
            withheld_message(&spec(url, source), openai, cred, &base, BaseFrom::Entry)
        };
        // The default origin, whatever the path; another port or scheme is another origin.
        assert_eq!(check("https://api.openai.com/other", file("r.json"), &keyed()), None);
        assert_eq!(check("https://API.openai.com:443/v1", file("r.json"), &keyed()), None);
        let why = check("https://api.openai.com:8443/v1", file("r.json"), &keyed()).unwrap();
        assert!(
            why.contains("\"https://api.openai.com:8443\"") && why.contains("r.json (entry 0)"),
            "{why}"
        );
        assert!(check("http://api.openai.com/v1", file("r.json"), &keyed()).is_some());
        // A text prefix is not an origin.
        assert!(check("https://api.openai.com.evil.example/v1", file("r.json"), &keyed()).is_some());
        // key.json's base_url and trusted_origins.
        let cred = Credential {
            base_url: Some("http://127.0.0.1:9000/v1".into()),
            trusted_origins: vec!["https://gw.example:8443".into()],
            ..keyed()
        };
        assert_eq!(check("http://127.0.0.1:9000/elsewhere", file("r.json"), &cred), None);
        assert_eq!(check("https://gw.example:8443/v1", SpecSource::Query, &cred), None);
        assert!(check("http://127.0.0.1:9001/v1", file("r.json"), &cred).is_some());
        // The packaged registry is ours; a query is not trusted.
        assert_eq!(
            check("http://other.example/v1", SpecSource::Packaged { index: 0 }, &keyed()),
            None
        );
        let why = check("http://other.example/v1", SpecSource::Query, &keyed()).unwrap();
        assert!(why.contains("the query") && why.contains("trusted_origins"), "{why}");
        // No key, nothing withheld; a base URL from key.json or the default is the user's.
        assert_eq!(
            check("http://other.example/v1", SpecSource::Query, &Credential::default()),
            None
        );
        let base = Url::parse("http://other.example/v1").unwrap();
        let s = spec("http://other.example/v1", SpecSource::Query);
        assert_eq!(withheld_message(&s, openai, &keyed(), &base, BaseFrom::KeyFile), None);
    }

    #[test]
    fn a_trusted_registry_file_may_direct_keys() {
        let dir = std::env::temp_dir().join(format!("lmhost-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let registry = dir.join("mine.json");
        std::fs::write(&registry, "[]").unwrap();
        let openai = find_backend("openai").unwrap();
        let store = crate::credentials::KeyStore::default().trust_registries(std::slice::from_ref(&registry));
        let cred = Credential {
            trusted_registries: store.for_backend("openai").trusted_registries,
            ..keyed()
        };
        let base = Url::parse("http://gw.example/v1").unwrap();
        // Named another way, the same file.
        let other_name = dir.join(".").join("mine.json");
        let s = spec(base.as_str(), file(other_name.to_str().unwrap()));
        assert_eq!(withheld_message(&s, openai, &cred, &base, BaseFrom::Entry), None);
        let s = spec(base.as_str(), file(dir.join("theirs.json").to_str().unwrap()));
        assert!(withheld_message(&s, openai, &cred, &base, BaseFrom::Entry).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
