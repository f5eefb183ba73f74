"""`python -m retrieval ...`: see retrieval/cli.py."""

import sys

from retrieval.cli import main

sys.exit(main())
