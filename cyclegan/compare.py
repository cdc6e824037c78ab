"""``python -m cyclegan.compare``: the command-line name kept from before the regroup.

The code lives in :mod:`cyclegan.inference.compare`; this module only runs its ``main``.
"""

import sys

from cyclegan.inference.compare import main

if __name__ == "__main__":
    sys.exit(main())
