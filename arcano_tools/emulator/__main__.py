"""``python -m arcano_tools.emulator``: run the RunningHub emulator alone (tests, demos)."""

from __future__ import annotations

import argparse
from pathlib import Path

from arcano_tools.emulator.app import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m arcano_tools.emulator",
        description="Serve the RunningHub emulator (settings also from EMULATOR_* variables).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="uploads and outputs (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.data_dir)


if __name__ == "__main__":
    main()
