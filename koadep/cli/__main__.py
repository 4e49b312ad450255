"""``python -m koadep.cli``: the ``koadep`` command."""

import sys

from koadep.cli import main

sys.exit(main())
