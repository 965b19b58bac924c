"""Where the team's real data files are, for the tests that read them when present.

``$CAUSALMTL_DATA`` if set, else the ``shared/data`` folder beside the repository (how the
team's machines and CI lay it out). Tests that need a file skip, with the reason, when it is
absent.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CAUSALMTL_DATA") or REPO.parent / "shared" / "data")
