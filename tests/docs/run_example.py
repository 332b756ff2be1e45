"""Runs one documentation example: ``python run_example.py example.py``.

The example runs as a script (``__name__ == "__main__"``) and then, as pytest would, every
top-level ``test_*`` function it defines is called. ``token`` is predefined as ``None``:
the README writes ``QVQClient(token)`` for "your Hugging Face token, if you have one".
"""

import runpy
import sys

namespace = runpy.run_path(sys.argv[1], init_globals={"token": None}, run_name="__main__")
for name, value in list(namespace.items()):
    if name.startswith("test_") and callable(value):
        value()
