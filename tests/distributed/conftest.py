import sys
from pathlib import Path

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # spawned ranks and submitit jobs import the helper module
    sys.path.insert(0, str(HERE))
