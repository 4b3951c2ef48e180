"""A PIN IVR: asks for a PIN (keys, ended by #), three tries, then says goodbye and hangs up.

Run it against a server (``relaykit serve --project P --token T`` in another terminal)::

    python examples/pin_ivr/pin_ivr.py --url ws://127.0.0.1:8080 --project P --token T

and call it with ``relaykit call ... --context office --press 427#``.
"""

from __future__ import annotations

import argparse
import os

from relaykit import Call, Consumer

PIN = "427"
ASK = "Please enter your PIN, then press pound."


class PinIvr(Consumer):
    contexts = ("office",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        for _ in range(3):
            result = await call.prompt_tts(
                "digits", ASK, digits_max=8, digits_terminators="#", initial_timeout=4.0
            )
            if call.ended:
                return
            if not result.successful:
                await call.play_tts("Sorry, I did not get any keys.")
            elif result.result == PIN:
                await call.play_tts("Thank you. Your PIN is correct. Goodbye.")
                break
            else:
                await call.play_tts("That PIN is not correct.")
        else:
            await call.play_tts("Too many attempts. Goodbye.")
        await call.hangup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("RELAYKIT_URL", "ws://127.0.0.1:8080"))
    parser.add_argument("--project", default=os.environ.get("RELAYKIT_PROJECT"))
    parser.add_argument("--token", default=os.environ.get("RELAYKIT_TOKEN"))
    args = parser.parse_args()
    PinIvr(project=args.project, token=args.token, url=args.url).run()


if __name__ == "__main__":
    main()
