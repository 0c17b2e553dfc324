//! Model downloads through the hub cache, against the loopback stand-in for the
//! hub in `lmhost_tests::fake_hub` (the real hub is not reachable from tests).

use std::path::{Path, PathBuf};

use lmhost::credentials::Secret;
use lmhost::engines::hub::{fetch_model_file, HubError, HubOptions, HubRequest};
use lmhost::engines::{resolve_model_file, EngineError};
use lmhost::registry::{ModelSpec, SpecSource};
use lmhost::{Error, GenerationParams, Message};
use lmhost_tests::fake_hub::{hex, host_with_hub, sha256, FakeFile, FakeHub, FakeRepo, Fault};
use lmhost_tests::{smollm, TempDir};

const REPO: &str = "test-org/tiny-model-GGUF";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const PRIVATE: &str = "test-org/private-model";
const PRIVATE_COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";
const TOKEN: &str = "hf_fixture_token_0123456789";

fn tiny_repo() -> FakeRepo {
    FakeRepo {
        id: REPO.into(),
        commit: COMMIT.into(),
        files: vec![
            FakeFile::small(".gitattributes", "*.gguf filter=lfs diff=lfs merge=lfs -text\n"),
            FakeFile::small("README.md", "# tiny model\nA fake repository for tests.\n"),
            FakeFile::lfs("model.Q4_1.gguf", 48 * 1024, 1),
            FakeFile::lfs("model.Q8_0.gguf", 24 * 1024, 2),
            FakeFile::lfs("sharded/model-00001-of-00002.gguf", 12 * 1024, 3),
            FakeFile::lfs("sharded/model-00002-of-00002.gguf", 10 * 1024, 4),
        ],
        token: None,
    }
}

fn private_repo() -> FakeRepo {
    FakeRepo {
        id: PRIVATE.into(),
        commit: PRIVATE_COMMIT.into(),
        files: vec![FakeFile::lfs("private.Q4_1.gguf", 8 * 1024, 5)],
        token: Some(TOKEN.into()),
    }
}

fn file(name: &str) -> FakeFile {
    tiny_repo()
        .files
        .into_iter()
        .chain(private_repo().files)
        .find(|f| f.name == name)
        .unwrap()
}

/// A hub with both repositories and an empty cache.
fn setup() -> (FakeHub, HubOptions, TempDir) {
    let hub = FakeHub::start(vec![tiny_repo(), private_repo()]);
    let cache = TempDir::new("hf-cache");
    let opts = HubOptions {
        endpoint: hub.endpoint(),
        cache_dir: cache.path().join("hub"),
        token: None,
        offline: false,
    };
    (hub, opts, cache)
}

fn request<'a>(repo: &'a str, filename: &'a str, additional: &'a [String]) -> HubRequest<'a> {
    HubRequest {
        repo,
        revision: "main",
        filename,
        additional_files: additional,
    }
}

fn fetch(opts: &HubOptions, filename: &str) -> Result<PathBuf, HubError> {
    fetch_model_file(opts, &request(REPO, filename, &[]))
}

fn repo_dir(opts: &HubOptions) -> PathBuf {
    opts.cache_dir.join("models--test-org--tiny-model-GGUF")
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn the_fixture_hashes_like_sha256() {
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&sha256(&[b'a'; 1000])),
        "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
}

#[test]
fn a_glob_matching_one_file_downloads_it_into_the_cache_layout() {
    let (hub, opts, _cache) = setup();
    let path = fetch(&opts, "*Q4_1.gguf").unwrap();
    let dir = repo_dir(&opts);
    let q4 = file("model.Q4_1.gguf");
    assert_eq!(path, dir.join("snapshots").join(COMMIT).join("model.Q4_1.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), q4.content);
    assert_eq!(
        std::fs::read_link(&path).unwrap(),
        PathBuf::from(format!("../../blobs/{}", q4.sha256()))
    );
    assert_eq!(std::fs::read(dir.join("blobs").join(q4.sha256())).unwrap(), q4.content);
    assert_eq!(std::fs::read_to_string(dir.join("refs/main")).unwrap(), COMMIT);
    assert_eq!(
        tree(&dir),
        [
            format!("blobs/{}", q4.sha256()),
            "refs/main".to_string(),
            format!("snapshots/{COMMIT}/model.Q4_1.gguf"),
        ]
    );
    let requests = hub.requests();
    let summary: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        summary,
        [
            format!("GET /api/models/{REPO}/revision/main"),
            format!("HEAD /{REPO}/resolve/{COMMIT}/model.Q4_1.gguf"),
            format!("GET /{REPO}/resolve/{COMMIT}/model.Q4_1.gguf"),
            format!("GET /cdn/{}", q4.sha256()),
        ]
    );
}

#[test]
fn a_small_file_is_stored_under_its_plain_etag() {
    let (_hub, opts, _cache) = setup();
    let path = fetch(&opts, "READ*.md").unwrap();
    let readme = file("README.md");
    assert_eq!(std::fs::read(&path).unwrap(), readme.content);
    // Served with `ETag: W/"…"`: the weak marker and quotes are not part of the name.
    assert_eq!(
        std::fs::read_link(&path).unwrap(),
        PathBuf::from(format!("../../blobs/{}", readme.etag()))
    );
}

#[test]
fn a_glob_matching_several_files_is_an_error_listing_them() {
    let (hub, opts, _cache) = setup();
    let err = fetch(&opts, "*.gguf").unwrap_err();
    assert!(matches!(err, HubError::Ambiguous { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "`*.gguf` matches 4 files of `{REPO}` (revision `main`): `model.Q4_1.gguf`, `model.Q8_0.gguf`, \
             `sharded/model-00001-of-00002.gguf`, `sharded/model-00002-of-00002.gguf`; make `filename` match exactly one"
        )
    );
    assert_eq!(hub.requests().len(), 1, "only the file list was asked for");
}

#[test]
fn a_glob_matching_nothing_lists_the_gguf_files() {
    let (_hub, opts, _cache) = setup();
    let err = fetch(&opts, "*Q5_K_M.gguf").unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "no file of `{REPO}` (revision `main`) matches `*Q5_K_M.gguf`; its .gguf files: `model.Q4_1.gguf`, \
             `model.Q8_0.gguf`, `sharded/model-00001-of-00002.gguf`, `sharded/model-00002-of-00002.gguf`"
        )
    );
}

#[test]
fn the_second_resolution_is_served_from_the_cache_without_a_request() {
    let (hub, opts, _cache) = setup();
    let first = fetch(&opts, "*Q8_0.gguf").unwrap();
    assert!(!hub.requests().is_empty());
    hub.clear_requests();
    let second = fetch(&opts, "*Q8_0.gguf").unwrap();
    assert_eq!(first, second);
    assert_eq!(hub.requests().len(), 0, "{:?}", hub.requests());
    // A file whose blob is already there (another revision, another tool) is linked, not fetched.
    std::fs::remove_file(&first).unwrap();
    fetch(&opts, "*Q8_0.gguf").unwrap();
    assert!(
        hub.requests().iter().all(|r| !r.path.starts_with("/cdn/")),
        "{:?}",
        hub.requests()
    );
}

#[test]
fn shards_are_fetched_together_and_the_first_shard_is_returned() {
    let (_hub, opts, _cache) = setup();
    let additional = vec!["sharded/*-00001-of-00002.gguf".to_string()];
    // `filename` names the second shard; llama.cpp still gets the first.
    let path = fetch_model_file(&opts, &request(REPO, "*-00002-of-00002.gguf", &additional)).unwrap();
    let snapshot = repo_dir(&opts).join("snapshots").join(COMMIT);
    assert_eq!(path, snapshot.join("sharded/model-00001-of-00002.gguf"));
    for name in ["sharded/model-00001-of-00002.gguf", "sharded/model-00002-of-00002.gguf"] {
        let f = file(name);
        let link = snapshot.join(name);
        assert_eq!(std::fs::read(&link).unwrap(), f.content);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from(format!("../../../blobs/{}", f.sha256()))
        );
    }
    let err = fetch_model_file(&opts, &request(REPO, "*Q4_1.gguf", &["*-00003-*".to_string()])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("no file of `{REPO}` (revision `main`) matches `*-00003-*`")),
        "{err}"
    );
}

#[test]
fn the_token_is_sent_only_when_set_and_never_shown() {
    let (hub, mut opts, _cache) = setup();
    fetch(&opts, "*Q4_1.gguf").unwrap();
    assert!(hub.requests().iter().all(|r| r.header("authorization").is_none()));

    let err = fetch_model_file(&opts, &request(PRIVATE, "*.gguf", &[])).unwrap_err();
    assert!(matches!(err, HubError::Status { status: 401, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "repository `{PRIVATE}` (revision `main`): HTTP 401 from {}/api/models/{PRIVATE}/revision/main: \
             a token is needed (the repository may be private or gated, or not exist): set HF_TOKEN or the \
             `huggingface` section of key.json",
            hub.endpoint()
        )
    );

    opts.token = Some(Secret::new("hf_wrong_token_000000"));
    let err = fetch_model_file(&opts, &request(PRIVATE, "*.gguf", &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 403") && err.contains("the token was refused"),
        "{err}"
    );
    assert!(!err.contains("hf_wrong_token"), "{err}");

    hub.clear_requests();
    opts.token = Some(Secret::new(TOKEN));
    let path = fetch_model_file(&opts, &request(PRIVATE, "*.gguf", &[])).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), file("private.Q4_1.gguf").content);
    let requests = hub.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{r:?}"
        );
    }
}

#[test]
fn offline_uses_the_cache_and_says_clearly_when_a_file_is_not_there() {
    let (hub, mut opts, _cache) = setup();
    opts.offline = true;
    let err = fetch(&opts, "*Q4_1.gguf").unwrap_err();
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "HF_HUB_OFFLINE is set and no file of `{REPO}` (revision `main`) matching `*Q4_1.gguf` is in the \
             cache `{}`; unset HF_HUB_OFFLINE to download it",
            repo_dir(&opts).display()
        )
    );
    opts.offline = false;
    let online = fetch(&opts, "*Q4_1.gguf").unwrap();
    hub.clear_requests();
    opts.offline = true;
    assert_eq!(fetch(&opts, "*Q4_1.gguf").unwrap(), online);
    // By commit too, without refs.
    let by_commit = HubRequest {
        revision: COMMIT,
        ..request(REPO, "model.Q4_1.gguf", &[])
    };
    assert_eq!(fetch_model_file(&opts, &by_commit).unwrap(), online);
    assert!(fetch(&opts, "*Q8_0.gguf").is_err());
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
}

#[test]
fn an_interrupted_download_leaves_no_complete_file_and_resumes_with_range() {
    let (hub, opts, _cache) = setup();
    let q4 = file("model.Q4_1.gguf");
    hub.fault_next("model.Q4_1.gguf", Fault::CutAfter(20_000));
    let err = fetch(&opts, "*Q4_1.gguf").unwrap_err();
    assert!(
        matches!(
            err,
            HubError::Interrupted {
                received: 20_000,
                expected: Some(49_152),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(REPO) && text.contains("model.Q4_1.gguf") && text.contains(&hub.endpoint()),
        "{text}"
    );
    let dir = repo_dir(&opts);
    assert_eq!(
        tree(&dir),
        [format!("blobs/{}.incomplete", q4.sha256()), "refs/main".to_string()]
    );
    assert_eq!(
        std::fs::read(dir.join(format!("blobs/{}.incomplete", q4.sha256()))).unwrap(),
        q4.content[..20_000]
    );

    hub.clear_requests();
    let path = fetch(&opts, "*Q4_1.gguf").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), q4.content);
    let cdn: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/cdn/"))
        .collect();
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].header("range"), Some("bytes=20000-"));
    assert!(!tree(&dir).iter().any(|f| f.ends_with(".incomplete")));
}

#[test]
fn size_and_checksum_mismatches_are_rejected_and_discarded() {
    let (hub, opts, _cache) = setup();
    let q4 = file("model.Q4_1.gguf");
    let dir = repo_dir(&opts);

    hub.fault_next("model.Q4_1.gguf", Fault::Corrupt);
    let err = fetch(&opts, "*Q4_1.gguf").unwrap_err();
    assert!(matches!(err, HubError::ChecksumMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("differs from the expected {}", q4.sha256())),
        "{err}"
    );
    assert_eq!(tree(&dir), ["refs/main"]);

    hub.fault_next("model.Q4_1.gguf", Fault::Short(1000));
    let err = fetch(&opts, "*Q4_1.gguf").unwrap_err();
    assert!(
        matches!(
            err,
            HubError::SizeMismatch {
                expected: 49_152,
                got: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(tree(&dir), ["refs/main"]);

    // A small file has no checksum to compare, but its size is still checked.
    hub.fault_next("README.md", Fault::Short(5));
    let err = fetch(&opts, "README.md").unwrap_err().to_string();
    assert!(err.contains("expected 42 bytes, got 5"), "{err}");

    assert_eq!(std::fs::read(fetch(&opts, "*Q4_1.gguf").unwrap()).unwrap(), q4.content);
}

#[test]
fn missing_repositories_revisions_and_files_say_so() {
    let (hub, mut opts, _cache) = setup();
    let err = fetch_model_file(
        &opts,
        &HubRequest {
            revision: "v9",
            ..request(REPO, "*Q4_1.gguf", &[])
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "repository `{REPO}` (revision `v9`): HTTP 404 from {}/api/models/{REPO}/revision/v9: revision not found",
            hub.endpoint()
        )
    );

    hub.fault_next("model.Q8_0.gguf", Fault::Gone);
    let err = fetch(&opts, "*Q8_0.gguf").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "file `model.Q8_0.gguf` of `{REPO}`: HTTP 404 from {}/{REPO}/resolve/{COMMIT}/model.Q8_0.gguf: \
             file not found in the repository",
            hub.endpoint()
        )
    );

    opts.token = Some(Secret::new(TOKEN));
    let err = fetch_model_file(&opts, &request("test-org/absent", "*.gguf", &[])).unwrap_err();
    assert!(matches!(err, HubError::Status { status: 404, .. }), "{err:?}");
    assert!(err.to_string().ends_with("repository not found"), "{err}");

    opts.endpoint = "http://127.0.0.1:9".into();
    let err = fetch(&opts, "*Q8_0.gguf").unwrap_err();
    assert!(matches!(err, HubError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("HF_HUB_OFFLINE=1"), "{err}");
}

fn spec(entry: serde_json::Value) -> ModelSpec {
    ModelSpec::from_entry(entry.as_object().unwrap(), SpecSource::Query).unwrap()
}

#[test]
fn a_registry_entry_naming_a_repository_resolves_through_the_hub() {
    let hub = FakeHub::start(vec![tiny_repo()]);
    let dirs = TempDir::new("hub-e2e");
    let hf_home = dirs.path().join("hf");
    let endpoint = hub.endpoint();
    // As the environment would say it; the process environment stays untouched.
    let opts = HubOptions::from_lookup(dirs.path(), |name| match name {
        "HF_ENDPOINT" => Some(endpoint.clone()),
        "HF_HOME" => Some(hf_home.display().to_string()),
        _ => None,
    });
    let entry = spec(serde_json::json!({
        "model_name": "tiny", "backend": "llamacpp",
        "model_config": {"huggingface_id": REPO, "filename": "*Q4_1.gguf", "revision": "main"}
    }));
    let path = resolve_model_file(&entry, &[], &opts).unwrap();
    assert_eq!(
        path,
        hf_home
            .join("hub/models--test-org--tiny-model-GGUF/snapshots")
            .join(COMMIT)
            .join("model.Q4_1.gguf")
    );

    // A `model_path` that is not there falls back to the hub.
    let entry = spec(serde_json::json!({
        "model_name": "tiny", "backend": "llamacpp", "model_path": "absent.gguf",
        "huggingface_id": REPO, "filename": "model.Q4_1.gguf"
    }));
    assert_eq!(resolve_model_file(&entry, &[], &opts).unwrap(), path);
    // One that is there wins, with no request.
    hub.clear_requests();
    let entry = spec(serde_json::json!({
        "model_name": "tiny", "backend": "llamacpp", "model_path": path.display().to_string(),
        "huggingface_id": REPO, "filename": "*Q8_0.gguf"
    }));
    assert_eq!(resolve_model_file(&entry, &[], &opts).unwrap(), path);
    assert!(hub.requests().is_empty());

    // Neither: the error as before.
    let entry = spec(serde_json::json!({"model_name": "tiny", "backend": "llamacpp", "huggingface_id": REPO}));
    let err = resolve_model_file(&entry, &[], &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "registry entry of `tiny`: the entry sets no `model_path`"
    );

    // A hub failure says which paths were tried too.
    let entry = spec(serde_json::json!({
        "model_name": "tiny", "backend": "llamacpp", "model_path": "absent.gguf",
        "huggingface_id": REPO, "filename": "*Q5*.gguf"
    }));
    let err = resolve_model_file(&entry, &[], &opts).unwrap_err();
    assert!(matches!(err, EngineError::Hub { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("model file of `tiny`: no file of")
            && err
                .to_string()
                .ends_with("`model_path` was not found either (tried `absent.gguf`)"),
        "{err}"
    );
}

/// The real model, served by the fixture, downloaded and run through a registry entry.
#[test]
fn a_host_downloads_and_runs_a_model_named_by_repository() {
    let Some(model_file) = smollm() else { return };
    let repo = FakeRepo {
        id: "test-org/SmolLM2-135M-Instruct-GGUF".into(),
        commit: COMMIT.into(),
        files: vec![FakeFile {
            name: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            content: std::fs::read(&model_file).unwrap(),
            lfs: false, // no sha256 of 98 MB in the fixture; the size is still checked
        }],
        token: None,
    };
    let hub = FakeHub::start(vec![repo]);
    let registry = serde_json::json!([{
        "model_name": "smol-from-hub", "backend": "llamacpp",
        "model_config": {
            "huggingface_id": "test-org/SmolLM2-135M-Instruct-GGUF", "filename": "*Q4_1.gguf",
            "premade_chat_template": true, "eos_to_cull": "<\\|im_end\\|>"
        }
    }]);
    let (host, _home) = host_with_hub(&hub, &registry, "hub-host");
    let model = host.load("smol-from-hub").unwrap();
    let g = model
        .generate(
            &[
                Message::system("You are a helpful assistant."),
                Message::user("What is the capital of France?"),
            ],
            &GenerationParams::greedy(24),
        )
        .unwrap();
    assert!(g.response_text.contains("Paris"), "{g:?}");
    assert_eq!(
        hub.requests().iter().filter(|r| r.method == "GET").count(),
        2,
        "one listing and one download: {:?}",
        hub.requests()
    );

    // Loading again is free; a broken entry still says what failed.
    hub.clear_requests();
    host.load("smol-from-hub").unwrap();
    assert!(hub.requests().is_empty());
    let err = host
        .load(r#"{"model_name": "x", "backend": "llamacpp", "huggingface_id": "test-org/SmolLM2-135M-Instruct-GGUF", "filename": "*Q8_0.gguf"}"#)
        .unwrap_err();
    assert!(matches!(err, Error::Engine(EngineError::Hub { .. })), "{err:?}");
}
