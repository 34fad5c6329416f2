"""`python -m serkit ...` is the `serkit` command."""

import sys

from .cli import main

sys.exit(main())
