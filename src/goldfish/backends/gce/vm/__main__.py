"""``python -m goldfish.backends.gce.vm``: run the agent (the zip application starts :func:`loop.main`)."""

import sys

from .loop import main

sys.exit(main())
