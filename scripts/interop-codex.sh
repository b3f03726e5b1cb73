#!/usr/bin/env bash
# Runs the remote half of this project's process scenario suite against the codex exec-server
# (npm package @openai/codex@0.123.0-linux-x64, which ships it prebuilt), for the features the
# April protocol has. It downloads ~60 MB from the npm registry; .ci/run runs it.
#
# Where a scenario asserts one of this project's additions (`signal`, `firstRetainedSeq`, exit
# ordered after earlier output, -1 for a PTY child's signal death, which codex reports as 1),
# it checks only the codex-compatible part when
# EXEC_SERVER_TEST_URL is set. Two scenarios are skipped there, and say so: eviction (it needs
# a small retention setting on the server) and the long poll (codex serves one request at a
# time per connection, so the write that would end the poll waits behind it).
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${HOME:-/root}/.codex-interop.XXXXXX")"   # codex wants CODEX_HOME outside /tmp
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "==> installing @openai/codex@0.123.0-linux-x64 into $work"
npm install --silent --prefix "$work" @openai/codex@0.123.0-linux-x64 >/dev/null
codex="$(find "$work/node_modules" -type f -name codex -perm -u+x | head -n 1)"
[[ -x "$codex" ]] || { echo "codex binary not found in the package" >&2; exit 1; }

mkdir -p "$work/home"
# The environment-policy scenario looks for these in the server's environment.
export XS_TEST_PLAIN=plain XS_TEST_API_KEY=key xs_test_secret_lower=secret XS_TEST_TOKEN=token XS_TEST_DROP_ME=drop
CODEX_HOME="$work/home" "$codex" exec-server --listen ws://127.0.0.1:0 >"$work/url" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
    [[ -s "$work/url" ]] && break
    sleep 0.1
done
url="$(head -n 1 "$work/url")"
[[ "$url" == ws://* ]] || { echo "codex exec-server did not print its URL" >&2; cat "$work/server.log" >&2; exit 1; }
echo "==> codex exec-server at $url"

EXEC_SERVER_TEST_URL="$url" cargo test -p exec-server --test process_scenarios -- \
    remote --test-threads 1
