"""Virtual callees: the far ends of the calls an IVR places to phone numbers.

``server.callees({"+15551110000": "answer", "+15552220000": "busy"})`` makes them the server's
dialer of ``phone`` devices (``calling.begin``, ``calling.dial`` and ``calling.connect``: the
SDKs' ``dial()`` and ``connect()``). Each number behaves as the table says; each call that is
answered gets a :class:`~relaykit.testing.caller.VirtualCaller` (``await
callees.expect_answered(number)``), which speaks, presses keys and listens like the caller of
an inbound call. A connected leg's audio is bridged to the call it was placed for, so what one
side sends, the other hears.

Every wait follows the event loop's clock (fast tests fast-forward the ringing too).
"""

from __future__ import annotations

__all__ = ["BEHAVIOURS", "Callee", "Dialled", "VirtualCallees"]

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ..calls import Call, CallService, EventSink
from ..media.asr import Recognizer
from ..media.tts import TtsEngine
from ..protocol.calling import Device, PhoneDevice
from .caller import VirtualCaller
from .expect import ExpectationError

log = logging.getLogger("relaykit.testing")

BEHAVIOURS = ("answer", "busy", "decline", "ring", "error")


@dataclass(frozen=True, slots=True)
class Callee:
    """How a number takes a call: ``answer`` after ringing ``ring`` seconds; ``decline``
    after ringing; ``ring`` for ever (the call ends ``noAnswer`` at the device's ``timeout``,
    30 s by default); ``busy`` or ``error`` at once. A number that would answer after its
    device's timeout does not answer either."""

    behaviour: str = "answer"
    ring: float = 1.0

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(
                f"unknown callee behaviour {self.behaviour!r}; use one of {', '.join(BEHAVIOURS)}"
            )
        if not 0 <= self.ring <= 3600:
            raise ValueError(f"ring must be 0 to 3600 seconds, not {self.ring!r}")


@dataclass(frozen=True, slots=True)
class Dialled:
    """One call placed to a virtual callee: the numbers, and where the call is now."""

    to_number: str
    from_number: str
    state: str
    end_reason: str | None


class _CalleeLeg:
    """The far end of one call to a virtual callee (the call's :class:`~relaykit.calls.Leg`)."""

    def __init__(self) -> None:
        self.timer: asyncio.TimerHandle | asyncio.Handle | None = None

    def answered(self, call: Call) -> None:
        """Only inbound calls are answered by the IVR; a callee's call is outbound."""

    def ended(self, call: Call, reason: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class VirtualCallees:
    """The server's dialer of ``phone`` devices in tests (see the module docstring).

    Args:
        service: the call service the calls run on.
        numbers: number → behaviour (``"answer"``, ``"busy"``, ``"decline"``, ``"ring"``,
            ``"error"``) or a :class:`Callee`; ``"*"`` covers every other number. A number
            the table does not cover fails with ``error``.
        tts: as for :class:`~relaykit.testing.caller.VirtualCaller`.
        recognizer: as for :class:`~relaykit.testing.caller.VirtualCaller`.
        inline: as for :class:`~relaykit.testing.caller.VirtualCaller`.
    """

    def __init__(
        self,
        service: CallService,
        numbers: Mapping[str, str | Callee],
        *,
        tts: TtsEngine,
        recognizer: Recognizer,
        inline: bool = False,
    ) -> None:
        self._service = service
        self.numbers = {
            number: how if isinstance(how, Callee) else Callee(how)
            for number, how in numbers.items()
        }
        self._tts = tts
        self._recognizer = recognizer
        self._inline = inline
        self._calls: list[Call] = []
        self._answered: list[tuple[str, VirtualCaller]] = []  # (number, its far end)
        self._taken: set[int] = set()  # indexes of answered legs expect_answered returned
        self._changed = asyncio.Event()

    @property
    def answered(self) -> list[VirtualCaller]:
        """Every leg answered so far, in order."""
        return [callee for _, callee in self._answered]

    @property
    def dialled(self) -> list[Dialled]:
        """Every call placed to a callee, in order, with its state now."""
        return [
            Dialled(c.to_number, c.from_number, c.state.value, c.end_reason) for c in self._calls
        ]

    def callee(self, number: str) -> Callee | None:
        """How ``number`` takes calls (None: it fails with ``error``)."""
        return self.numbers.get(number) or self.numbers.get("*")

    # -- the Dialer of phone devices --------------------------------------------------------
    def check(self, device: Device) -> None:
        PhoneDevice.parse(device)

    async def begin(
        self,
        project: str,
        owner: EventSink,
        tag: str | None,
        device: Device,
        *,
        context: str = "",
        peer: Call | None = None,
    ) -> Call:
        phone = PhoneDevice.parse(device)
        leg = _CalleeLeg()
        call = self._service.create_outbound(
            project=project,
            owner=owner,
            context=context,
            from_number=phone.from_number,
            to_number=phone.to_number,
            leg=leg,
            tag=tag,
            device=phone.to_wire(),
            via="virtual",
            peer=peer,
        )
        self._calls.append(call)
        self._changed.set()
        callee = self.callee(phone.to_number)
        loop = asyncio.get_running_loop()
        if callee is None:
            log.warning(
                "! no virtual callee for %s (the table has %s); the call fails",
                phone.to_number,
                ", ".join(self.numbers) or "no numbers",
            )
            leg.timer = loop.call_soon(self._fail, call, "error")
        elif callee.behaviour in ("busy", "error"):
            leg.timer = loop.call_soon(self._fail, call, callee.behaviour)
        else:
            leg.timer = loop.call_soon(self._ring, call, leg, callee, phone.timeout)
        return call

    def _ring(self, call: Call, leg: _CalleeLeg, callee: Callee, timeout: float) -> None:
        self._service.far_end_ringing(call)
        loop = asyncio.get_running_loop()
        if callee.behaviour == "answer" and callee.ring < timeout:
            leg.timer = loop.call_later(callee.ring, self._answer, call)
        elif callee.behaviour == "decline" and callee.ring < timeout:
            leg.timer = loop.call_later(callee.ring, self._fail, call, "decline")
        else:
            leg.timer = loop.call_later(timeout, self._fail, call, "noAnswer")

    def _fail(self, call: Call, reason: str) -> None:
        self._service.far_end_hung_up(call, reason)
        self._changed.set()

    def _answer(self, call: Call) -> None:
        self._service.far_end_answered(call)
        callee = VirtualCaller(
            self._service, call, tts=self._tts, recognizer=self._recognizer, inline=self._inline
        )
        self._answered.append((call.to_number, callee))
        self._changed.set()

    # -- expectations -----------------------------------------------------------------------
    async def expect_answered(
        self, number: str | None = None, *, timeout: float = 5.0
    ) -> VirtualCaller:
        """The next answered leg (to ``number``, if given) not returned before: wait for it.

        Raises :class:`ExpectationError` listing the calls placed so far when none is answered
        within ``timeout`` seconds.
        """
        __tracebackhide__ = True  # pytest shows the test line, not this
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, (to_number, callee) in enumerate(self._answered):
                if index in self._taken:
                    continue
                if number is None or to_number == number:
                    self._taken.add(index)
                    return callee
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ExpectationError(self._describe(number, timeout))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _describe(self, number: str | None, timeout: float) -> str:
        wanted = f"a call to {number}" if number is not None else "a call"
        lines = [f"expect_answered(): {wanted} was not answered within {timeout:g} s"]
        if not self._calls:
            lines.append("No call was placed to a virtual callee.")
        else:
            lines.append("Calls placed:")
            for d in self.dialled:
                reason = f" ({d.end_reason})" if d.end_reason else ""
                lines.append(f"  {d.from_number or '?'} → {d.to_number}: {d.state}{reason}")
        return "\n".join(lines)
