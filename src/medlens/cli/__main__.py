"""``python -m medlens.cli``."""

import sys

from medlens.cli import main

sys.exit(main())
