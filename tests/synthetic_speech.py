"""Speech synthesised in a child process, for tests that run before ``tests/media/test_tts.py``.

espeak-ng is one process-wide synthesiser that carries state from one utterance to the next
(see :mod:`relaykit.media.tts`); a test module that synthesises in the pytest process changes
the audio every later module gets. These helpers synthesise in a fresh interpreter instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_SCRIPT = """
import json, sys
import numpy as np
from relaykit.media.tts import EspeakTts
tts = EspeakTts(cache_size=0)
requests = json.loads(sys.argv[2])
audio = {str(i): tts.synthesize(text, language=lang, gender=gender)
         for i, (text, lang, gender) in enumerate(requests)}
np.savez(sys.argv[1], **audio)
"""


def synthesize_elsewhere(
    requests: Sequence[tuple[str, str | None, str | None]],
) -> list[np.ndarray]:
    """``(text, language, gender)`` each → 16 kHz int16 speech, synthesised in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.npz"
        subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(out), json.dumps([list(r) for r in requests])],
            check=True,
            timeout=120,
        )
        with np.load(out) as data:
            return [np.asarray(data[str(i)]) for i in range(len(requests))]
