"""Runs one documentation example: ``python run_example.py example.py``.

The example runs as a script (``__name__ == "__main__"``) and then, as pytest would, every
top-level ``test_*`` function it defines is called. Nothing is predefined: an example
must run as pasted.
"""

import runpy
import sys

namespace = runpy.run_path(sys.argv[1], run_name="__main__")
for name, value in list(namespace.items()):
    if name.startswith("test_") and callable(value):
        value()
