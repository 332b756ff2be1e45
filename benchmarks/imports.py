"""Import times: how long ``import X`` takes in a fresh interpreter of X's venv.

Measured with ``python -X importtime``, each row three times a round; the figure is the median
over all of them.
"""

from __future__ import annotations

import re
import subprocess

from venvs import VENVS, python_of

#: import-time rows: (label, venv, module)
IMPORTS = [
    ("requests", "sdk", "requests"),
    ("qvq_sdk", "sdk", "qvq_sdk"),
    ("gradio_client", "gradio_client", "gradio_client"),
    ("g4f provider", "g4f", "g4f.Provider.hf_space.Qwen_QVQ_72B"),
    ("openai", "openai", "openai"),
]


def import_time(venv, module, env):
    """Microseconds ``import module`` takes, from ``python -X importtime``.

    The sum of the cumulative times of the top-level imports that ``-c pass`` does not make
    (the interpreter's own start-up imports are not the module's). It runs in ``VENVS``: ``-c``
    puts the working directory first on ``sys.path``, and in the checkout's root ``import
    qvq_sdk`` would find the working tree's package instead of the one the run installed.
    """

    def top_level(code):
        done = subprocess.run(
            [python_of(venv), "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, cwd=VENVS
        )
        if done.returncode:
            raise SystemExit("%r failed in the %s venv: %s" % (code, venv, done.stderr[-500:]))
        found = {}
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)
            if match:  # exactly one space after the bar: imported at top level
                found[match.group(2)] = int(match.group(1))
        return found

    startup = set(top_level("pass"))
    return sum(us for name, us in top_level("import " + module).items() if name not in startup)
