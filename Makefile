# Tunesmith: `make run` trains a small demo model from scratch and talks to it; `make test` runs
# every check CI runs. Builds go to a cache outside the checkout so repeated runs are incremental.

export CARGO_TARGET_DIR ?= $(HOME)/.cache/tunesmith-target
CARGO ?= cargo
SHELL := /bin/bash
BIN = $(CARGO_TARGET_DIR)/release/tunesmith
DEMO_RUN ?= $(CURDIR)/runs/demo

.PHONY: run test deps build fixtures bench

deps:
	@scripts/ensure-deps.sh

build: deps
	$(CARGO) build --release -p tunesmith-cli

# The main job, offline: a tiny model trained from scratch on the bundled demo text, then a sample.
run: build
	$(BIN) train --scratch tiny --preset quick --data demo/business-rules.md --out $(DEMO_RUN)
	$(BIN) generate --model $(DEMO_RUN) --prompt "When a customer asks for a refund" --max-new-tokens 80

test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@set -o pipefail; $(CARGO) test --workspace 2>&1 | tee $(CARGO_TARGET_DIR)/test.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' $(CARGO_TARGET_DIR)/test.log

# Regenerates the parity fixtures (needs PyTorch + transformers; outputs are committed).
fixtures:
	python3 crates/engine/tests/fixtures/make_fixtures.py

bench: build
	$(BIN) bench --presets tiny,small,gpt2
