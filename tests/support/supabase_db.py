"""A plain PostgreSQL database set up the way Supabase sets up its own: the API roles
(``anon``, ``authenticated``, ``service_role``), default privileges that grant every new
table to them, and the ``auth.uid()`` / ``auth.jwt()`` functions reading the request's JWT
claims (``request.jwt.claims``), after supabase/postgres' initial schema and supabase/auth's
migrations (see ``../shared/docs/supabase.md`` §4). Plus a schema snapshot to compare two
databases, and a way to run SQL as a signed-in user the way PostgREST does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

#: Roles are cluster-wide: created once, whichever test database asks first.
ROLES_SQL = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
END
$$;
"""

DATABASE_SQL = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$;
"""

SUPABASE_MIGRATIONS = Path(__file__).resolve().parents[2] / "supabase" / "migrations"


def make_supabase_like(url: str) -> None:
    """Give a fresh database Supabase's roles, grants and ``auth`` functions."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ROLES_SQL)
        conn.execute(DATABASE_SQL)


def apply_files(url: str, files: list[Path]) -> None:
    """Run migration files in name order, each in its own transaction (as ``supabase db push``)."""
    with psycopg.connect(url) as conn:
        for path in sorted(files):
            with conn.transaction():
                conn.execute(path.read_text())


def migration_files() -> list[Path]:
    return sorted(SUPABASE_MIGRATIONS.glob("*.sql"))


def schema_snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Tables, columns, indexes, constraints, RLS flags and policies of ``public``."""
    queries = {
        "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default,
                      character_maximum_length FROM information_schema.columns
                      WHERE table_schema = 'public' ORDER BY 1, 2""",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                          ORDER BY 1, 2""",
        "rls": """SELECT relname, relrowsecurity FROM pg_class
                  WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1""",
        "policies": """SELECT tablename, policyname, cmd, roles::text, qual FROM pg_policies
                       WHERE schemaname = 'public' ORDER BY 1, 2""",
        "migrations": "SELECT version, name FROM schema_migrations ORDER BY 1",
    }
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in queries.items()}


@contextmanager
def as_role(url: str, role: str, user_id: str | None = None) -> Iterator[psycopg.Connection]:
    """A transaction acting as PostgREST does for a request: ``set local role`` and the JWT's
    claims in ``request.jwt.claims``; rolled back at the end."""
    claims = {"role": role, **({"sub": user_id} if user_id else {})}
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        conn.execute(f"SET LOCAL ROLE {role}")
        try:
            yield conn
        finally:
            conn.rollback()
