"""A front desk: asks for an account number (checked, three tries), then connects the caller to
sales or support, tries a second agent, and apologises when nobody answers.

Run it against a server (``relaykit serve --project P --token T`` in another terminal)::

    python examples/transfer/transfer.py --url ws://127.0.0.1:8080 --project P --token T

The numbers it connects to are phone devices: in tests, ``relay_server.callees({...})``
answers them (see ``test_transfer.py``); a SIP phone works too, with a ``sip`` device.
"""

from __future__ import annotations

import argparse
import os

from relaykit import Call, Consumer

SALES = ["+15551110001", "+15551110002"]  # tried in this order
SUPPORT = ["+15552220001", "+15552220002"]  # rung together
RINGBACK = [{"type": "ringtone", "name": "us"}]


class FrontDesk(Consumer):
    contexts = ("office",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        account = await call.ask(
            "digits",
            "Welcome to Acme. Please enter your six digit account number, then press pound.",
            digits_max=10,
            digits_terminators="#",
            min_digits=6,
            valid=r"[1-9]\d{5}",
            tries=3,
            invalid="That is not a valid account number.",
        )
        if not account.successful:
            await call.play_tts("Sorry, we could not take your account number. Goodbye.")
            await call.hangup()
            return
        choice = await call.ask(
            "digits",
            "For sales, press 1. For support, press 2.",
            digits_max=1,
            valid="[12]",
            tries=2,
            invalid="Please press 1 or 2.",
        )
        if not choice.successful:
            await call.hangup()
            return
        if choice.result == "1":
            devices: list = [{"to_number": number} for number in SALES]
        else:
            devices = [[{"to_number": number} for number in SUPPORT]]
        await call.play_tts("Please hold while we connect you.")
        result = await call.connect(devices, RINGBACK)
        if result.successful:
            await call.wait_for_ended()
            return
        await call.play_tts("Sorry, nobody is available right now. Please call again later.")
        await call.hangup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("RELAYKIT_URL", "ws://127.0.0.1:8080"))
    parser.add_argument("--project", default=os.environ.get("RELAYKIT_PROJECT"))
    parser.add_argument("--token", default=os.environ.get("RELAYKIT_TOKEN"))
    args = parser.parse_args()
    FrontDesk(project=args.project, token=args.token, url=args.url).run()


if __name__ == "__main__":
    main()
