"""Lets each example's test import the IVR beside it (``from pin_ivr import PinIvr``).

pytest's default import mode puts a test's folder on ``sys.path`` by itself; this repository
runs pytest with ``--import-mode=importlib``, which does not, so the example folders are added
here.
"""

import sys
from pathlib import Path

for folder in sorted(Path(__file__).parent.iterdir()):
    if folder.is_dir() and not folder.name.startswith((".", "_")):
        sys.path.insert(0, str(folder))
