"""`python -m hourglass`: the `hourglass` command."""

from __future__ import annotations

import sys

from hourglass.cli import main

if __name__ == "__main__":
    sys.exit(main())
