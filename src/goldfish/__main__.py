"""``python -m goldfish``: the same command line as the ``goldfish`` console script."""

import sys

from goldfish.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
