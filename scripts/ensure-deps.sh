#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build Tunesmith: a C toolchain and pkg-config
# from Debian (for the tokenizer's regex library), and says how to get Rust when it is missing.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# The desktop window (Tauri on WebKitGTK) and its end-to-end tests.
for pkg in libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libsoup-3.0-dev libayatana-appindicator3-dev webkit2gtk-driver xvfb imagemagick; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "cargo is in ~/.cargo/bin but not on PATH: run 'source ~/.cargo/env' and try again" >&2
  else
    echo "Rust is not installed. Install it with rustup (https://rustup.rs), then run this again." >&2
  fi
  exit 1
fi
for tool in rustfmt clippy; do
  if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$tool" 2>/dev/null || { echo "cargo $tool is missing: rustup component add $tool" >&2; exit 1; }
  fi
done

node_major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')
if [ -n "$node_major" ] && [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old for the web page's tools (Vite 8 needs Node 20.19 or newer); install Node 20 or newer" >&2
  exit 1
fi
