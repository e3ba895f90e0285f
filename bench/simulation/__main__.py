"""``python -m bench.simulation [--jobs N] [--seed S]``: target 7 alone."""

from __future__ import annotations

import argparse

from bench.simulation import JOBS, SEED, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    run(args.jobs, args.seed)


if __name__ == "__main__":
    main()
