#!/usr/bin/env bash
# Make sure the PostgreSQL server programs (initdb, pg_ctl, postgres,
# pg_basebackup, psql) are installed, for the tests that start their own
# PostgreSQL (crates/keyfence-testkit), and print their directory.
#
#   scripts/setup-postgres.sh         # prints e.g. /usr/lib/postgresql/15/bin
#
# Idempotent: does nothing when the programs are already there. Otherwise
# installs Debian's `postgresql` package with apt-get (running `apt-get update`
# first when the package lists have never been fetched, or when the first
# install attempt fails on a stale list). The tests find the same directory
# themselves (KEYFENCE_PG_BIN overrides both).
set -euo pipefail

log() { echo "setup-postgres: $*" >&2; }

# The directory holding initdb and pg_ctl: $KEYFENCE_PG_BIN, else the newest
# Debian /usr/lib/postgresql/<major>/bin, else initdb's directory on PATH.
find_bin() {
    if [[ -n "${KEYFENCE_PG_BIN:-}" ]]; then
        [[ -x "$KEYFENCE_PG_BIN/initdb" && -x "$KEYFENCE_PG_BIN/pg_ctl" ]] && echo "$KEYFENCE_PG_BIN"
        return 0
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4 -n -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
    fi
}

bin="$(find_bin)"
if [[ -z "$bin" ]]; then
    if [[ -n "${KEYFENCE_PG_BIN:-}" ]]; then
        log "KEYFENCE_PG_BIN=$KEYFENCE_PG_BIN holds no initdb/pg_ctl"
        exit 1
    fi
    command -v apt-get >/dev/null 2>&1 || { log "no initdb/pg_ctl and no apt-get: install the PostgreSQL server (13 or later) by hand"; exit 1; }
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { log "installing postgresql needs root (or sudo)"; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        log "apt-get update"
        $SUDO apt-get update -q >&2
    fi
    log "apt-get install postgresql"
    if ! $SUDO apt-get install -y -q --no-install-recommends postgresql >&2; then
        log "install failed; refreshing the package lists once and retrying"
        $SUDO apt-get update -q >&2
        $SUDO apt-get install -y -q --no-install-recommends postgresql >&2
    fi
    bin="$(find_bin)"
    [[ -n "$bin" ]] || { log "postgresql installed but initdb/pg_ctl still not found"; exit 1; }
fi
echo "$bin"
