# shellcheck shell=bash
# Source me: `. scripts/env.sh`. Keeps Reflex offline and inside the project, and puts the
# project's venv (and PostgreSQL's server binaries, when they are off PATH) on PATH.
# Safe to source several times. See README.md ("The two commands") and scripts/bootstrap.sh.

_arcano_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ARCANO_ROOT="$_arcano_root"

case "$(uname -m)" in
    aarch64 | arm64) _arcano_bun_pkg="@oven/bun-linux-aarch64" ;;
    *) _arcano_bun_pkg="@oven/bun-linux-x64" ;;
esac
export ARCANO_BUN_PKG="$_arcano_bun_pkg"

export REFLEX_DIR="$_arcano_root/.reflex"
export REFLEX_BUN_PATH="$_arcano_root/.tools/node_modules/$_arcano_bun_pkg/bin/bun"
export REFLEX_CHECK_LATEST_VERSION=0
export REFLEX_TELEMETRY_ENABLED=false
export BUN_INSTALL_CACHE_DIR="$_arcano_root/.tools/bun-cache"
export BUN_RUNTIME_TRANSPILER_CACHE_PATH="$_arcano_root/.tools/bun-transpiler-cache"
# Skips Reflex's registry latency probe. `npm config get` costs ~0.2 s, so only once.
if [ -z "${NPM_CONFIG_REGISTRY:-}" ]; then
    NPM_CONFIG_REGISTRY="$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)"
    export NPM_CONFIG_REGISTRY
fi

case ":$PATH:" in
    *":$_arcano_root/.venv/bin:"*) ;;
    *) export PATH="$_arcano_root/.venv/bin:$PATH" ;;
esac
export VIRTUAL_ENV="$_arcano_root/.venv"

# Debian keeps initdb/pg_ctl/postgres in /usr/lib/postgresql/<major>/bin, off PATH.
if ! command -v pg_ctl >/dev/null 2>&1; then
    for _arcano_pg in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        export PATH="$PATH:$_arcano_pg"
        break
    done
    unset _arcano_pg
fi

unset _arcano_root _arcano_bun_pkg
