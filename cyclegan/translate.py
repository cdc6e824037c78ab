"""``python -m cyclegan.translate``: the command-line name kept from before the regroup.

The code lives in :mod:`cyclegan.inference.translate`; this module only runs its ``main``.
"""

import sys

from cyclegan.inference.translate import main

if __name__ == "__main__":
    sys.exit(main())
