"""``python -m zerocopy``: the command line (``zerocopy._cli``)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
