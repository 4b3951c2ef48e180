"""A speech menu: a recorded greeting, then "say sales or support" (keys 1 and 2 work too).

Run it against a server that may play the greeting it writes to the temporary folder
(``relaykit serve --project P --token T --media-dir /tmp/relaykit-examples`` in another
terminal)::

    python examples/speech_menu/speech_menu.py --url ws://127.0.0.1:8080 --project P --token T

and call it with ``relaykit call ... --context menu --say sales``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import soundfile

from relaykit import Call, Consumer
from relaykit.media.tts import EspeakTts

MENU = "Say sales or support. Or press 1 for sales, 2 for support."
KEYS = {"1": "sales", "2": "support"}


def greeting_file() -> Path:
    """The recorded greeting, "Thank you for calling Acme." (made once with the TTS voice)."""
    path = Path(tempfile.gettempdir()) / "relaykit-examples" / "greeting.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = EspeakTts().synthesize("Thank you for calling Acme.", gender="female")
        partial = path.with_name(f"greeting.{os.getpid()}.part")
        soundfile.write(partial, samples, 16000, format="WAV", subtype="PCM_16")
        os.replace(partial, path)  # whole file or none, whoever writes it
    return path


class SpeechMenu(Consumer):
    contexts = ("menu",)

    def setup(self) -> None:
        self.greeting = greeting_file().as_uri()  # a real WAV file, played as audio media

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        await call.play_audio(self.greeting)
        for _ in range(2):
            result = await call.prompt_tts(
                "both",
                MENU,
                speech_hints=["sales", "support"],
                digits_max=1,
                initial_timeout=5.0,
            )
            if call.ended:
                return
            choice = KEYS.get(result.result or "", result.result) if result.successful else None
            if choice in ("sales", "support"):
                await call.play_tts(f"Connecting you to {choice}. Goodbye.")
                break
            await call.play_tts("Sorry, I did not understand.")
        else:
            await call.play_tts("Please call again later. Goodbye.")
        await call.hangup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("RELAYKIT_URL", "ws://127.0.0.1:8080"))
    parser.add_argument("--project", default=os.environ.get("RELAYKIT_PROJECT"))
    parser.add_argument("--token", default=os.environ.get("RELAYKIT_TOKEN"))
    args = parser.parse_args()
    SpeechMenu(project=args.project, token=args.token, url=args.url).run()


if __name__ == "__main__":
    main()
