# Shared settings for every hack/ script: where tools and builds are cached.
# Sourced, not executed. Everything lives outside the clone so that a fresh
# clone (CI) reuses what an earlier run built on this machine.
export HEXA_CACHE="${HEXA_CACHE:-$HOME/.cache/hexabase}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HEXA_CACHE/target}"
export HEXA_TOOLS="$HEXA_CACHE/tools"
export PATH="$HEXA_TOOLS/bin:$HEXA_TOOLS/node_modules/.bin:$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
mkdir -p "$HEXA_CACHE" "$HEXA_TOOLS/bin"

# step "message": a visible progress line for long set-up work.
step() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
