# Tunesmith: `make run` trains a small demo model from scratch and talks to it; `make test` runs
# every check CI runs. Builds go to a cache outside the checkout so repeated runs are incremental.

export CARGO_TARGET_DIR ?= $(HOME)/.cache/tunesmith-target
CARGO ?= cargo
SHELL := /bin/bash
BIN = $(CARGO_TARGET_DIR)/release/tunesmith
DEMO_RUN ?= $(CURDIR)/runs/demo

.PHONY: run demo test e2e deps ui ui-test build fixtures bench bundle

deps:
	@scripts/ensure-deps.sh

# The web page: dependencies from the lock file, then the bundle Tauri embeds (ui/dist).
ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
# Rebuilt only when a page source changed: a fresh ui/dist makes cargo recompile and relink the
# desktop crate and every test binary that embeds it.
UI_SOURCES := $(shell find ui/src ui/index.html ui/vite.config.ts ui/svelte.config.js ui/tsconfig.json ui/package.json -type f 2>/dev/null)
ui/dist/index.html: ui/node_modules/.package-lock.json $(UI_SOURCES)
	cd ui && npm run build
ui: deps ui/dist/index.html

# Vitest, then svelte-check (types and accessibility; any warning fails).
ui-test: ui/node_modules/.package-lock.json
	cd ui && npm test
	cd ui && npm run check

build: deps ui
	$(CARGO) build --release -p tunesmith-cli
	$(CARGO) build --release -p tunesmith-desktop

# The app: opens the Tunesmith window (offline; the demo dataset is one click away).
run: build
	$(CARGO_TARGET_DIR)/release/tunesmith-desktop

# The main job from the command line: a tiny model trained from scratch on the demo text, then a sample.
demo: build
	$(BIN) train --scratch tiny --preset quick --data demo/business-rules.md --out $(DEMO_RUN)
	$(BIN) generate --model $(DEMO_RUN) --prompt "When a customer asks for a refund" --max-new-tokens 80

# Clippy runs inside the test build: cargo uses clippy-driver as the compiler of our own crates
# (RUSTC_WORKSPACE_WRAPPER, the mechanism `cargo clippy` itself uses; CLIPPY_ARGS is how it passes
# `-- -D warnings`), so every target `cargo test` builds (libraries, binaries, tests, examples) is
# linted while it is compiled. A separate `cargo clippy` type-checked every dependency a second time
# and reused none of it: 21.6 of the 65.5 minutes of a cold run. Dependencies are compiled by plain
# rustc, as under `cargo clippy`. The e2e target below runs in the same environment (exported), so
# it rebuilds nothing.
CLIPPY_DRIVER = $(shell command -v clippy-driver || rustup which clippy-driver 2>/dev/null)
test e2e: export RUSTC_WORKSPACE_WRAPPER = $(CLIPPY_DRIVER)
test e2e: export CLIPPY_ARGS = -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
NEED_CLIPPY = @test -n "$(CLIPPY_DRIVER)" || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
test: deps ui ui-test
	$(CARGO) fmt --all --check
	$(NEED_CLIPPY)
	@# The log goes into the build cache, which does not exist yet on a fresh machine (tee would fail).
	@mkdir -p $(CARGO_TARGET_DIR)
	@set -o pipefail; $(CARGO) test --workspace 2>&1 | tee $(CARGO_TARGET_DIR)/test.log
	@set -o pipefail; $(MAKE) --no-print-directory e2e 2>&1 | tee -a $(CARGO_TARGET_DIR)/test.log
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' $(CARGO_TARGET_DIR)/test.log

# The real app in a real window (Xvfb + tauri-driver + WebKitWebDriver); screenshots land in
# $(CARGO_TARGET_DIR)/e2e-screenshots. The cargo command is `make test`'s own `cargo test --workspace`
# with a name filter, so nothing is compiled again: `-p tunesmith-desktop` rebuilt ~110 dependency
# crates with other features (17 minutes of a cold CI run), and even `--workspace --test e2e` leaves
# the other packages' dev-dependency features out and recompiles the engine.
e2e: deps ui
	$(NEED_CLIPPY)
	@command -v tauri-driver >/dev/null 2>&1 || [ -x "$(HOME)/.cargo/bin/tauri-driver" ] || $(CARGO) install tauri-driver --locked
	$(CARGO) test --workspace -- --ignored --nocapture first_five_minutes_in_a_real_window

# Regenerates the parity fixtures (needs PyTorch + transformers; outputs are committed).
fixtures:
	python3 crates/engine/tests/fixtures/make_fixtures.py

bench: build
	$(BIN) bench --presets tiny,small,gpt2
	$(BIN) bench --copies 100000000

# Installers with Tauri's bundler (config: "bundle" in tauri.conf.json, icons in icons/): the Linux
# .deb, then an attempt at the AppImage, whose tooling (linuxdeploy) the bundler downloads from
# GitHub, so it needs the internet. The Tauri CLI comes from the npm registry at a pinned version
# (prebuilt, no Rust compile). macOS (.app/.dmg) and Windows (.msi/.exe) installers are configured
# too but must be built on those systems: `npx @tauri-apps/cli@$(TAURI_CLI) build`.
TAURI_CLI ?= 2.12.5
TAURI = npx --yes @tauri-apps/cli@$(TAURI_CLI)
BUNDLE_DIR = $(CARGO_TARGET_DIR)/release/bundle
bundle: deps ui
	$(TAURI) build --ci --bundles deb
	@ls -l $(BUNDLE_DIR)/deb/*.deb
	@if $(TAURI) bundle --ci --bundles appimage; then ls -l $(BUNDLE_DIR)/appimage/*.AppImage; \
	else echo "The AppImage was not built: its tooling (linuxdeploy) is downloaded from GitHub, which needs the internet. The .deb above is complete." >&2; fi
