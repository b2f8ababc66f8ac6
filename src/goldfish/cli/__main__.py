"""``python -m goldfish.cli``: the same command as the ``goldfish`` console script."""

import sys

from goldfish.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
