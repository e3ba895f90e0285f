"""One source of truth for the schema: ``supabase/migrations/*.sql`` is generated from the
app's migration steps, and the committed files must equal what the steps generate now
(the files' effect on a real PostgreSQL: ``tests/integration/test_supabase_schema.py``)."""

from __future__ import annotations

import re
from pathlib import Path

from arcano_tools.cli import main
from arcano_tools.store import supabase_sql
from arcano_tools.store.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]
#: The Supabase CLI runs only files named like this, in name order.
SUPABASE_NAME = re.compile(r"^([0-9]+)_(.*)\.sql$")


def test_the_committed_supabase_files_are_the_generated_ones() -> None:
    stale = supabase_sql.stale_files(
        ROOT / supabase_sql.SUPABASE_MIGRATIONS_DIR, supabase_sql.render()
    )
    assert stale == [], "out of date; run: python -m arcano_tools supabase-sql"


def test_one_file_per_step_named_for_the_supabase_cli_in_the_steps_order() -> None:
    names = list(supabase_sql.render())
    assert len(names) == len(MIGRATIONS)
    assert names == sorted(names)
    for name, (version, step_name, _) in zip(names, MIGRATIONS, strict=True):
        match = SUPABASE_NAME.match(name)
        assert match is not None, name
        assert len(match.group(1)) == 14  # a UTC timestamp, as `supabase migration new` makes
        assert int(match.group(1)[-4:]) == version
        assert match.group(2) == step_name


def test_the_command_writes_and_checks_the_files(tmp_path: Path) -> None:
    out = tmp_path / "migrations"
    assert main(["supabase-sql", "--dir", str(out), "--check"]) == 1  # nothing there yet
    (out).mkdir()
    (out / "20200101000000_left_over.sql").write_text("select 1;")
    assert main(["supabase-sql", "--dir", str(out)]) == 0
    assert main(["supabase-sql", "--dir", str(out), "--check"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(supabase_sql.render())
    first = sorted(out.iterdir())[0]
    first.write_text(first.read_text() + "-- edited by hand\n")
    assert main(["supabase-sql", "--dir", str(out), "--check"]) == 1
