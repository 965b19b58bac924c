import sys
from pathlib import Path

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # spawned workers inherit sys.path and import the toy module
    sys.path.insert(0, str(HERE))

import _toy_experiments  # noqa: E402,F401  (registers "toy-sweep")
