"""``python -m qvq_sdk``: the ``qvq`` command."""

import sys

from .cli import main

sys.exit(main())
