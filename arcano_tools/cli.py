"""``python -m arcano_tools …``: tokens for scripts, the service key, and standalone servers.

Imports no Reflex, so scripts and tests start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from arcano_tools.config import load_settings
from arcano_tools.logs import configure_logging, lean_records


async def _token(user_id: str, admin: bool) -> str:
    from arcano_tools.wiring import Services

    services = Services(load_settings())
    try:
        # only the schema, never ``prepare()``: a script minting a token must not rewrite the
        # RunningHub account rows a running server was configured with (its key and cap)
        await services.store.migrate()
        await services.store.ensure_user(
            user_id, credits=services.settings.starting_credits, admin=admin
        )
        _, token = await services.user_token(user_id)
        return token
    finally:
        await services.stop()


def _supabase_sql(directory: Path | None, *, check: bool) -> int:
    """Write (or ``--check``) the Supabase migration files generated from the app's steps."""
    from arcano_tools.store import supabase_sql

    directory = directory or supabase_sql.SUPABASE_MIGRATIONS_DIR
    files = supabase_sql.render()
    if check:
        stale = supabase_sql.stale_files(directory, files)
        for name in stale:
            sys.stderr.write(f"out of date: {directory / name}\n")
        if stale:
            sys.stderr.write("run: python -m arcano_tools supabase-sql\n")
        return 1 if stale else 0
    for name in supabase_sql.write(directory, files):
        sys.stdout.write(f"wrote {directory / name}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arcano_tools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_token = sub.add_parser("token", help="print a user access token (creating the user if new)")
    p_token.add_argument("--user", required=True, help="user id (any string up to 64 chars)")
    p_token.add_argument("--admin", action="store_true", help="make the user an operator")
    sub.add_parser("service-key", help="print the service key (bearer for service-only routes)")
    p_emu = sub.add_parser("emulator", help="run the RunningHub emulator on its own")
    p_emu.add_argument("--host", default="127.0.0.1")
    p_emu.add_argument("--port", type=int, default=8100)
    p_emu.add_argument("--data-dir", type=Path, default=None)
    p_api = sub.add_parser("serve-api", help="serve the HTTP API without the Reflex pages")
    p_api.add_argument("--host", default="127.0.0.1")
    p_api.add_argument("--port", type=int, default=8000)
    p_sql = sub.add_parser(
        "supabase-sql",
        help="write the app's migrations as Supabase migration files (supabase/migrations)",
    )
    p_sql.add_argument("--dir", type=Path, default=None, help="default: supabase/migrations")
    p_sql.add_argument(
        "--check", action="store_true", help="only say whether the files are up to date"
    )
    args = parser.parse_args(argv)

    configure_logging(load_settings().log_format, level=logging.WARNING)
    if args.command == "token":
        if not args.user or len(args.user) > 64:
            parser.error("--user must be 1 to 64 characters")
        sys.stdout.write(asyncio.run(_token(args.user, args.admin)) + "\n")
    elif args.command == "service-key":
        sys.stdout.write(load_settings().effective_service_key + "\n")
    elif args.command == "emulator":
        from arcano_tools.emulator.app import serve

        serve(args.host, args.port, args.data_dir)
    elif args.command == "supabase-sql":
        return _supabase_sql(args.dir, check=args.check)
    elif args.command == "serve-api":
        import uvicorn

        from arcano_tools.api.routes import create_api
        from arcano_tools.gc_tuning import tune_for_server
        from arcano_tools.wiring import Services, refuse_unsafe_start

        settings = load_settings(backend_port=args.port)
        configure_logging(settings.log_format, level=logging.INFO)
        refuse_unsafe_start(settings)
        app = create_api(Services(settings))
        tune_for_server()
        lean_records()
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
