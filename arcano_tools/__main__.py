"""Entry point of ``python -m arcano_tools`` (see :mod:`arcano_tools.cli`)."""

import sys

from arcano_tools.cli import main

sys.exit(main())
