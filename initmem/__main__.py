"""python -m initmem: see initmem/cli.py."""

import sys

from initmem.cli import main

sys.exit(main())
