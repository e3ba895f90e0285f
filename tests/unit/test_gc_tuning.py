"""A server process tunes its garbage collector (``gc_tuning``) and its log records
(``logs.lean_records``) before it serves; every check runs in a child process, so this test
process keeps CPython's defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from arcano_tools import gc_tuning
from tests.support.env import settings_env_names

#: Prints the collector's settings instead of serving: what ``serve-api`` set up before it.
SERVE_API_WITHOUT_SERVING = """
import gc, json, sys, uvicorn
def report(*_args, **_kwargs):
    import logging
    lean = logging._srcfile is None and not logging.logThreads and not logging.logProcesses
    print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                      "lean_records": lean}))
uvicorn.run = report
from arcano_tools.cli import main
sys.exit(main(["serve-api", "--port", "8999"]))
"""


#: The Reflex app's lifespan (what each granian worker runs first) over stand-in services.
REFLEX_LIFESPAN = """
import asyncio, gc, json, logging
from arcano_tools.web import runtime

class Services:
    async def start(self): pass
    async def stop(self): pass

runtime._services = Services()

async def main():
    async with runtime.lifespan():
        lean = logging._srcfile is None and not logging.logThreads and not logging.logProcesses
        print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                          "lean_records": lean}))

asyncio.run(main())
"""


def run_python(code: str, tmp_path: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in settings_env_names()}
    env.update(ARCANO_DEMO="true", ARCANO_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def assert_tuned(report: dict[str, object]) -> None:
    assert report["threshold"] == [
        gc_tuning.YOUNG_THRESHOLD,
        gc_tuning.MIDDLE_THRESHOLD,
        gc_tuning.OLD_THRESHOLD,
    ]
    assert isinstance(report["frozen"], int)
    assert report["frozen"] > 10_000  # the app's modules and objects, not a handful
    assert report["lean_records"] is True


def test_serve_api_freezes_the_loaded_code_and_raises_the_young_threshold(
    tmp_path: Path,
) -> None:
    assert_tuned(run_python(SERVE_API_WITHOUT_SERVING, tmp_path))


def test_the_reflex_workers_lifespan_tunes_its_collector(tmp_path: Path) -> None:
    """The figures of ``bench.followers`` are a Reflex worker's: its lifespan does it."""
    assert_tuned(run_python(REFLEX_LIFESPAN, tmp_path))


def test_a_plain_process_keeps_cpythons_defaults(tmp_path: Path) -> None:
    """Importing the app changes nothing: only a server's start tunes the collector."""
    report = run_python(
        "import gc, json, logging, arcano_tools.api.routes, arcano_tools.gc_tuning\n"
        "print(json.dumps({'threshold': gc.get_threshold(), 'frozen': gc.get_freeze_count(),"
        " 'lean_records': logging._srcfile is None}))",
        tmp_path,
    )
    assert report == {"threshold": [700, 10, 10], "frozen": 0, "lean_records": False}
