#!/usr/bin/env bash
# Idempotent project setup; about 0.3 s when everything is already in place.
#   scripts/bootstrap.sh          venv + project (-e .[dev]) + bun (what `make run` needs)
#   scripts/bootstrap.sh --test   the same, plus chromium, PostgreSQL, PgBouncer and Redis
#                                 (Debian packages, installed only if missing and we are root)
#   scripts/bootstrap.sh --bench  --test, plus wrk (Debian package; what `make bench` drives)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WANT_TEST=0
WANT_BENCH=0
for arg in "$@"; do
    case "$arg" in
        --test) WANT_TEST=1 ;;
        --bench) WANT_BENCH=1 ;;
        -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "bootstrap: unknown argument $arg" >&2; exit 2 ;;
    esac
done

log() { echo "bootstrap: $*" >&2; }

# --- Python venv + project ----------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "${PYTHON:-python3}" -m venv .venv
fi
STAMP=.venv/.arcano-pyproject.sha256
want_hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want_hash" ]; then
    log "pyproject.toml changed: pip install -e .[dev]"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    echo "$want_hash" >"$STAMP"
fi

# shellcheck source=scripts/env.sh
. scripts/env.sh

# --- bun from the npm registry, at the version Reflex wants ----------------------------------
bun_ver="$(.venv/bin/python -c 'from reflex_base.constants import Bun; print(Bun.VERSION)')"
have_ver="$("$REFLEX_BUN_PATH" --version 2>/dev/null || true)"
if [ "$have_ver" != "$bun_ver" ]; then
    log "installing $ARCANO_BUN_PKG@$bun_ver from the npm registry into .tools/"
    mkdir -p .tools
    npm install --prefix .tools --no-audit --no-fund --no-save --loglevel=error \
        "$ARCANO_BUN_PKG@$bun_ver" >&2
    "$REFLEX_BUN_PATH" --version >/dev/null
fi
mkdir -p "$BUN_INSTALL_CACHE_DIR" "$BUN_RUNTIME_TRANSPILER_CACHE_PATH" "$REFLEX_DIR"

# --- system packages for the test suite ------------------------------------------------------
if [ "$WANT_BENCH" = 1 ]; then
    WANT_TEST=1  # the benchmark runs PostgreSQL too
fi
if [ "$WANT_TEST" = 1 ]; then
    pkgs=()
    [ -x /usr/bin/chromium ] || pkgs+=(chromium)
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    # Debian puts it in /usr/sbin (off a non-root PATH); the contract tests run through it
    [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || pkgs+=(pgbouncer)
    # env.sh already appended /usr/lib/postgresql/<major>/bin to PATH when it exists.
    if ! command -v initdb >/dev/null 2>&1 || ! command -v pg_ctl >/dev/null 2>&1; then
        pkgs+=(postgresql)
    fi
    if [ "$WANT_BENCH" = 1 ] && ! command -v wrk >/dev/null 2>&1; then
        pkgs+=(wrk)
    fi
    if [ "${#pkgs[@]}" -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            log "apt-get install ${pkgs[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq >&2
            apt-get install -y -qq "${pkgs[@]}" >&2
        else
            log "missing system packages (${pkgs[*]}); not root, so not installing them." \
                "Tests that need them will fail or skip."
        fi
    fi
    # initdb refuses root: the test PostgreSQL runs as the `postgres` user (Debian creates it).
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        log "creating the postgres system user for the test database"
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
fi
