"""``python -m pushlab``."""

import sys

from pushlab.cli import main

sys.exit(main())
