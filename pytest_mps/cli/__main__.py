"""``python -m pytest_mps.cli``: the ``pytest-mps`` command."""

import sys

from pytest_mps.cli import main

sys.exit(main())
