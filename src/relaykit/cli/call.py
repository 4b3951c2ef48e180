"""``relaykit call``: a scripted virtual caller against a server in another process.

The steps (``--expect``, ``--press``, ``--say``, ``--silence``, ``--play``) run in the order they
are given on the command line; the transcript is printed live while they run.
"""

from __future__ import annotations

__all__ = ["STEP_OPTIONS", "CallOutcome", "Step", "ordered_steps", "run_call"]

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ..calls import TranscriptEntry
from ..errors import AuthenticationError, CallEndedError, RelayConnectionError, RelayError
from ..testing.remote import RemoteCaller

#: the options that are steps, in command-line order
STEP_OPTIONS = ("--expect", "--press", "--say", "--silence", "--play")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Step:
    """One step of ``relaykit call``, in the order given on the command line."""

    kind: str  # expect, press, say, silence, play
    value: str

    def describe(self) -> str:
        return f"--{self.kind} {self.value}"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How ``relaykit call`` ended: its exit code, a message and the transcript."""

    code: int  # the process exit code
    message: str
    transcript: list[TranscriptEntry]


def ordered_steps(args: Sequence[str], valued: set[str]) -> list[Step]:
    """The step options of ``args`` in the order given.

    ``valued`` names every option that takes a value, so that a value which looks like an
    option (``--say --press``) is read as the value it is.
    """
    steps: list[Step] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in valued and not eq:
            value = args[i + 1] if i + 1 < len(args) else ""
            i += 1
        if name in STEP_OPTIONS:
            steps.append(Step(name[2:], value))
        i += 1
    return steps


async def run_call(
    *,
    url: str,
    project: str,
    token: str,
    context: str,
    steps: Sequence[Step],
    console: Console,
    from_number: str | None = None,
    to_number: str | None = None,
    hangup: bool = False,
    timeout: float = 30.0,
    prompt_timeout: float = 10.0,
    wait_listening: bool = True,
    save: Path | None = None,
    on_entry: Callable[[TranscriptEntry], None] | None = None,
) -> CallOutcome:
    """Place the call, run ``steps``, then wait for the IVR to hang up (or hang up)."""
    started = time.monotonic()
    caller = RemoteCaller(url, project, token, on_transcript=on_entry)

    def outcome(code: int, message: str) -> CallOutcome:
        return CallOutcome(code, message, list(caller.transcript))

    try:
        with console.status(f"connecting to {caller.url}"):
            await caller.connect()
    except AuthenticationError as exc:
        return outcome(EXIT_UNREACHABLE, f"{caller.url} refused the credentials: {exc}")
    except (RelayConnectionError, OSError, TimeoutError) as exc:
        return outcome(EXIT_UNREACHABLE, f"cannot reach {caller.url}: {exc}")
    try:
        try:
            with console.status(f"calling context {context!r}"):
                await caller.dial(context, from_number, to_number, timeout=prompt_timeout)
                await caller.wait_answered(prompt_timeout)
        except RelayError as exc:
            return outcome(EXIT_FAILED, f"the call was not answered: {exc}")
        for number, step in enumerate(steps, 1):
            label = f"step {number} ({step.describe()})"
            try:
                await _run_step(caller, step, console, prompt_timeout, wait_listening)
            except ValueError as exc:
                return outcome(EXIT_USAGE, f"{label}: {exc}")
            except CallEndedError:
                return outcome(EXIT_FAILED, f"{label}: the call ended before this step")
            except RelayError as exc:
                return outcome(EXIT_FAILED, f"{label} failed: {exc}")
        try:
            if hangup:
                await caller.hangup()
            else:
                with console.status("waiting for the IVR to hang up"):
                    await caller.expect_hangup(timeout)
        except RelayError as exc:
            await caller.hangup()
            return outcome(EXIT_FAILED, f"the IVR did not end the call: {exc}")
        if save is not None:
            await caller.save_wav(save)
        seconds = time.monotonic() - started
        return outcome(EXIT_OK, f"call completed as scripted ({seconds:.1f} s)")
    except RelayConnectionError as exc:
        return outcome(EXIT_UNREACHABLE, f"lost the connection: {exc}")
    finally:
        await caller.close()


async def _run_step(
    caller: RemoteCaller, step: Step, console: Console, prompt_timeout: float, listen: bool
) -> None:
    if step.kind == "expect":
        with console.status(f"waiting to hear {step.value!r}"):
            await caller.expect_prompt(step.value, timeout=prompt_timeout)
        return
    if step.kind == "silence":
        try:
            seconds = float(step.value)
        except ValueError:
            raise ValueError(f"--silence takes seconds, not {step.value!r}") from None
        with console.status(f"silent for {seconds:g} s"):
            await caller.silence(seconds)
        return
    if listen:
        with console.status("waiting until the IVR listens"):
            await caller.wait_listening(prompt_timeout)
    with console.status(f"{step.kind} {step.value}"):
        if step.kind == "press":
            await caller.press(step.value)
        elif step.kind == "say":
            await caller.say(step.value)
        elif step.kind == "play":
            if not Path(step.value).is_file():
                raise ValueError(f"no such file: {step.value}")
            await caller.play_wav(step.value)
        else:  # pragma: no cover - ordered_steps only makes the kinds above
            raise ValueError(f"unknown step {step.kind!r}")
