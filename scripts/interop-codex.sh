#!/usr/bin/env bash
# Runs the remote half of this project's scenario suites against codex's own exec-server, for
# the features each codex version has, so that the suites test behaviour, not our
# implementation. The npm packages ship the server prebuilt; this downloads ~130 MB from the
# npm registry. .ci/run runs it.
#
# - codex 0.123 (the April protocol): the process suite. Where a scenario asserts one of this
#   project's additions (`signal`, `firstRetainedSeq`, exit ordered after earlier output, -1
#   for a PTY child's signal death, which codex reports as 1), it checks only the
#   codex-compatible part when EXEC_SERVER_TEST_URL is set. Two scenarios are skipped there,
#   and say so: eviction (it needs a small retention setting on the server) and the long poll
#   (codex serves one request at a time per connection, so the write that would end the poll
#   waits behind it).
# - codex 0.171 (today's client's server, `file://` paths): the sandboxed-process scenarios it
#   supports, listed below; the others check this server's own additions (its refusals, its
#   port and secret hiding, resize and signal methods), or where codex differs: it refuses
#   writes inside a `.git` that `git init` creates under a skip entry (SPEC section 10 says
#   that works), and its sandbox ends with the command.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${HOME:-/root}/.codex-interop.XXXXXX")"   # codex wants CODEX_HOME outside /tmp
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

# Installs @openai/codex@$1-linux-x64 and starts its exec-server; sets `url` to its URL.
# (Not run in a subshell, so that the trap knows the server.)
start_codex() {
    local version="$1" dir="$work/$1"
    mkdir -p "$dir/home"
    echo "==> installing @openai/codex@$version-linux-x64 into $dir" >&2
    npm install --silent --prefix "$dir" "@openai/codex@$version-linux-x64" >/dev/null
    local codex
    codex="$(find "$dir/node_modules" -type f -name codex -perm -u+x | head -n 1)"
    [[ -x "$codex" ]] || { echo "codex binary not found in the $version package" >&2; exit 1; }
    CODEX_HOME="$dir/home" "$codex" exec-server --listen ws://127.0.0.1:0 >"$dir/url" 2>"$dir/server.log" &
    servers+=($!)
    for _ in $(seq 100); do
        [[ -s "$dir/url" ]] && break
        sleep 0.1
    done
    url="$(head -n 1 "$dir/url")"
    [[ "$url" == ws://* ]] || { echo "codex $version exec-server did not print its URL" >&2; cat "$dir/server.log" >&2; exit 1; }
    echo "==> codex $version exec-server at $url" >&2
}

# The environment-policy scenario looks for these in the server's environment.
export XS_TEST_PLAIN=plain XS_TEST_API_KEY=key xs_test_secret_lower=secret XS_TEST_TOKEN=token XS_TEST_DROP_ME=drop

start_codex 0.123.0
url_0123="$url"
start_codex 0.171.0
url_0171="$url"

EXEC_SERVER_TEST_URL="$url_0123" cargo test -p exec-server --test process_scenarios -- \
    remote --test-threads 1

sandboxed=(
    workspace_writes_are_confined
    git_metadata_stays_intact
    symlinks_do_not_lead_out
    read_only_profile_reads_but_never_writes
    minimal_reads_and_deny_entries
    detached_and_reexecuted_children_stay_confined
    network_restricted_and_enabled
    no_capabilities_and_no_new_privs
    terminate_kills_everything_in_the_sandbox
    sandbox_denied_is_reported
    gitdir_of_a_git_file_is_protected
)
EXEC_SERVER_TEST_URL="$url_0171" cargo test -p exec-server --test process_sandbox -- \
    --exact "${sandboxed[@]/%/::remote}" --test-threads 1
