"""``python -m cyclegan.app``: see :mod:`cyclegan.app.cli`."""

import sys

from cyclegan.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
