//! Where the user's API key goes: only to origins the user bound it to
//! (the backend's default, key.json's `base_url` and `trusted_origins`, entries
//! of a trusted registry file), never where an untrusted registry entry or an
//! ad-hoc query points. Each test runs real loopback servers: the "other host"
//! records everything it receives. The last test does the same through the
//! `lmhost` command (`--trusted-registry`, `$LMHOST_TRUSTED_REGISTRIES`).

use std::path::PathBuf;

use lmhost::{GenerationParams, Host, HostConfig, Message};
use lmhost_tests::fixture_api::{FixtureApi, Reply};
use lmhost_tests::TempDir;
use serde_json::{json, Value};

use crate::remote::SECRET;

fn ok_reply() -> Reply {
    Reply::json(
        200,
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
               "type": "message", "role": "assistant", "content": [{"type": "text", "text": "fine"}],
               "stop_reason": "end_turn"}),
    )
}

/// A host with `keys` as its only key file (no environment keys), the registry
/// files `untrusted` and `trusted` (only the latter marked trusted), each
/// written to the returned folder; the paths of both files.
fn host_with(untrusted: Value, trusted: Value, keys: Value) -> (Host, TempDir, PathBuf, PathBuf) {
    let home = TempDir::new("key-origins");
    let key_file = home.path().join("key.json");
    std::fs::write(&key_file, keys.to_string()).unwrap();
    let theirs = home.path().join("community.json");
    std::fs::write(&theirs, untrusted.to_string()).unwrap();
    let mine = home.path().join("mine.json");
    std::fs::write(&mine, trusted.to_string()).unwrap();
    let mut config = HostConfig::with_home(home.path().to_path_buf());
    config.key_files = vec![key_file];
    config.keys_from_env = false;
    config.registry_files = vec![theirs.clone(), mine.clone()];
    // Named another way than in `registry_files`: trust follows the file, not the spelling.
    config.trusted_registries = vec![home.path().join(".").join("mine.json")];
    (Host::with_config(config).expect("host starts"), home, theirs, mine)
}

fn hi(host: &Host, query: &str) -> lmhost::Result<lmhost::Generation> {
    host.load(query)?
        .generate(&[Message::user("hi")], &GenerationParams::greedy(8))
}

fn never_saw_the_key(api: &FixtureApi) {
    for r in api.requests() {
        for (name, value) in &r.headers {
            assert!(!value.contains(SECRET), "the key reached the other host in `{name}`");
        }
        assert!(!r.body.contains(SECRET) && !r.path.contains(SECRET));
    }
}

#[test]
fn a_registry_entry_cannot_send_the_users_key_to_another_host() {
    let other = FixtureApi::start(vec![ok_reply()]);
    let home_api = FixtureApi::start(vec![ok_reply()]);
    let elsewhere = format!("{}/v1", other.url());
    let untrusted = json!([
        {"model_name": "steal-openai", "backend": "openai", "model_id": "gpt", "base_url": elsewhere},
        {"model_name": "steal-anthropic", "backend": "anthropic", "model_id": "claude", "base_url": elsewhere},
        {"model_name": "compat", "backend": "openai_compatible", "model_id": "m", "base_url": elsewhere},
    ]);
    let trusted = json!([{"model_name": "mine", "backend": "openai", "model_id": "gpt"}]);
    let keys = json!({
        "openai": {"api_key": SECRET, "base_url": format!("{}/v1", home_api.url()), "organisation": "org-secret"},
        "anthropic": {"api_key": SECRET},
        "openai_compatible": {"api_key": SECRET},
    });
    let (host, _home, theirs, _mine) = host_with(untrusted, trusted, keys);
    let origin = other.url();

    // Both key headers (Authorization for openai, x-api-key for anthropic): the
    // model does not load, and the error says why and what to do.
    for (name, section) in [("steal-openai", "openai"), ("steal-anthropic", "anthropic")] {
        let err = hi(&host, name).unwrap_err().to_string();
        for part in [
            format!("`{name}`"),
            format!("{} (entry", theirs.display()),
            format!("\"{origin}\""),
            format!("`{section}` section"),
            "trusted_origins".into(),
            "--trusted-registry".into(),
        ] {
            assert!(err.contains(&part), "{name}: no {part:?} in: {err}");
        }
        assert!(!err.contains(SECRET), "{err}");
    }
    // A query naming the base URL itself, or adding it to an entry of a trusted
    // file, is not trusted either.
    let adhoc = json!({"model_name": "adhoc", "backend": "openai", "model_id": "gpt", "base_url": elsewhere});
    let err = hi(&host, &adhoc.to_string()).unwrap_err().to_string();
    assert!(err.contains("`adhoc`") && err.contains("the query"), "{err}");
    let added = json!({"model_name": "mine", "base_url": elsewhere});
    let err = hi(&host, &added.to_string()).unwrap_err().to_string();
    assert!(err.contains("`mine`") && err.contains("the query"), "{err}");
    assert!(other.requests().is_empty(), "{:#?}", other.requests());

    // A backend whose key is optional still works, without the key.
    let g = hi(&host, "compat").unwrap();
    assert_eq!(g.response_text, "fine");
    let sent = other.only_request();
    assert_eq!(sent.header("authorization"), None);
    never_saw_the_key(&other);

    // And the key still goes where the user put it (key.json's base_url), with
    // the organisation header.
    let g = hi(&host, "mine").unwrap();
    assert_eq!(g.response_text, "fine");
    let sent = home_api.only_request();
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(sent.header("openai-organization"), Some("org-secret"));
}

#[test]
fn the_key_follows_key_json_base_url_trusted_origins_and_trusted_registries() {
    let configured = FixtureApi::start(vec![ok_reply()]);
    let gateway = FixtureApi::start(vec![ok_reply()]);
    let own = FixtureApi::start(vec![ok_reply()]);
    let untrusted = json!([
        // clemcore's convention: the base URL in key.json, none in the entry.
        {"model_name": "from-key-json", "backend": "openai", "model_id": "gpt"},
        // The same origin as key.json's base_url, another path.
        {"model_name": "same-origin", "backend": "openai", "model_id": "gpt",
         "base_url": format!("{}/v2", configured.url())},
        // An origin the anthropic section trusts.
        {"model_name": "via-gateway", "backend": "anthropic", "model_id": "claude",
         "base_url": format!("{}/v1", gateway.url())},
    ]);
    let trusted = json!([
        {"model_name": "my-server", "backend": "openai", "model_id": "gpt", "base_url": format!("{}/v1", own.url())},
    ]);
    let keys = json!({
        "openai": {"api_key": SECRET, "base_url": format!("{}/v1", configured.url())},
        "anthropic": {"api_key": "ant-key-123456", "trusted_origins": [gateway.url()]},
    });
    let (host, _home, _theirs, _mine) = host_with(untrusted, trusted, keys);
    for name in ["from-key-json", "same-origin", "via-gateway", "my-server"] {
        let g = hi(&host, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(g.response_text, "fine", "{name}");
    }
    let bearer = format!("Bearer {SECRET}");
    let sent = configured.requests();
    assert_eq!(
        sent.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/v1/chat/completions", "/v2/chat/completions"]
    );
    assert!(sent.iter().all(|r| r.header("authorization") == Some(bearer.as_str())));
    assert_eq!(gateway.only_request().header("x-api-key"), Some("ant-key-123456"));
    assert_eq!(own.only_request().header("authorization"), Some(bearer.as_str()));
}

#[test]
fn key_json_trusted_origins_must_be_origins() {
    let home = TempDir::new("key-origins-bad");
    let key_file = home.path().join("key.json");
    std::fs::write(
        &key_file,
        json!({"openai": {"api_key": SECRET, "trusted_origins": ["https://gw.example/v1"]}}).to_string(),
    )
    .unwrap();
    let registry = home.path().join("r.json");
    std::fs::write(
        &registry,
        json!([{"model_name": "gpt", "backend": "openai", "model_id": "gpt"}]).to_string(),
    )
    .unwrap();
    let mut config = HostConfig::with_home(home.path().to_path_buf());
    config.key_files = vec![key_file.clone()];
    config.keys_from_env = false;
    config.registry_files = vec![registry];
    let host = Host::with_config(config).unwrap();
    let err = host.load("gpt").unwrap_err().to_string();
    assert!(
        err.contains(key_file.to_str().unwrap())
            && err.contains("`openai`")
            && err.contains("trusted_origins")
            && err.contains("https://gw.example/v1")
            && !err.contains(SECRET),
        "{err}"
    );
}

#[test]
fn the_command_line_trusts_a_registry_file_only_when_told() {
    let other = FixtureApi::start(vec![ok_reply()]);
    let tmp = TempDir::new("cli-trust");
    let home = tmp.path();
    std::fs::write(
        home.join("key.json"),
        json!({"openai": {"api_key": SECRET}}).to_string(),
    )
    .unwrap();
    let registry = home.join("r.json");
    let entry = json!([{"model_name": "gpt-x", "backend": "openai", "model_id": "gpt",
                        "base_url": format!("{}/v1", other.url())}]);
    std::fs::write(&registry, entry.to_string()).unwrap();
    let file = registry.to_str().unwrap();
    let lmhost = |args: &[&str], trusted_env: Option<&str>| {
        let mut command = crate::lmhost_command();
        command
            .args(args)
            .args(["run", "-m", "gpt-x", "hi"])
            .current_dir(home)
            .env("LMHOST_HOME", home)
            .env("HOME", home)
            .env_remove("OPENAI_API_KEY")
            .env_remove("LMHOST_TRUSTED_REGISTRIES");
        if let Some(list) = trusted_env {
            command.env("LMHOST_TRUSTED_REGISTRIES", list);
        }
        command.output().unwrap()
    };
    let out = lmhost(&["--registry", file], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`gpt-x`") && stderr.contains("--trusted-registry") && !stderr.contains(SECRET),
        "{stderr}"
    );
    assert!(other.requests().is_empty());

    let bearer = format!("Bearer {SECRET}");
    let out = lmhost(&["--trusted-registry", file], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(other.only_request().header("authorization"), Some(bearer.as_str()));

    let out = lmhost(&["--registry", file], Some(file));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(other.requests().len(), 2);
    assert_eq!(other.requests()[1].header("authorization"), Some(bearer.as_str()));
}
