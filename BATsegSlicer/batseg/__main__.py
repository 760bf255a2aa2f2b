"""`python -m batseg ...` runs the command line (used by the Slicer module's child process)."""

import sys

from batseg.cli import main

sys.exit(main())
