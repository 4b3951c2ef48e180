"""``Call`` and the ``client.calling`` namespace, with the v2 SDK's names (spec §7.3–§7.5)."""

from __future__ import annotations

__all__ = [
    "Call",
    "Calling",
    "CallingClient",
    "DetectOptions",
    "MachineDetectOptions",
    "PromptOptions",
    "RecordOptions",
]

import asyncio
import inspect
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypedDict, Unpack, get_args

from ..errors import RelayError
from ..protocol import calling
from .components import (
    CommandSender,
    Component,
    ConnectAction,
    ConnectComponent,
    DetectAction,
    DetectComponent,
    DisconnectComponent,
    PlayAction,
    PlayComponent,
    PromptAction,
    PromptComponent,
    RecordAction,
    RecordComponent,
    SendDigitsAction,
    SendDigitsComponent,
    TapAction,
    TapComponent,
)
from .payloads import (
    AudioDirection,
    CallState,
    DetectType,
    EndReason,
    FaxTone,
    Gender,
    PromptType,
    RecordFormat,
    SpeechEngine,
    TapCodec,
    TapTargetType,
    build_collect,
    build_devices,
    build_media_list,
)
from .results import (
    AnswerResult,
    AskResult,
    ConnectResult,
    DetectResult,
    DialResult,
    DisconnectResult,
    Event,
    HangupResult,
    PlayResult,
    PromptOutcome,
    PromptResult,
    RecordResult,
    SendDigitsResult,
    TapResult,
)

log = logging.getLogger("relaykit.client")

_STATES: tuple[str, ...] = get_args(CallState)

# A call event handler: gets the event's params; may be a coroutine function.
Handler = Callable[[dict[str, Any]], Any]


class PromptOptions(TypedDict, total=False):
    """The options of every prompt method ([prompt_async][relaykit.client.Call.prompt_async]
    and its kin, [ask][relaykit.client.Call.ask]), passed as keyword arguments:
    ``call.prompt_tts("digits", "PIN?", digits_max=4)``.

    An option left out or None is not sent, so the server's default applies. ``digits_*``
    options need prompt_type "digits" or "both", the speech ones "speech" or "both"; otherwise
    ValueError names the option. A dict of options can be built once and passed to many
    prompts: ``options: PromptOptions = {"digits_max": 4}; await call.prompt_tts("digits",
    "PIN?", **options)``.
    """

    volume: float | None
    """Media volume in dB (-40 to 40)."""
    initial_timeout: float | None
    """Seconds to wait for input to start once the media has ended."""
    digits_max: int | None
    """Number of digits that completes the input."""
    digits_terminators: str | None
    """Keys that complete the input, e.g. ``"#"``."""
    digits_timeout: float | None
    """Seconds allowed between two keys."""
    end_silence_timeout: float | None
    """Seconds of silence that end speech."""
    speech_timeout: float | None
    """Most seconds of speech."""
    speech_language: str | None
    """Recognition language, e.g. ``"en-US"``."""
    speech_hints: list[str] | tuple[str, ...] | None
    """Words or phrases the caller is expected to say."""
    speech_min_confidence: float | None
    """relaykit extension: results under this confidence (0–100) are ``no_match`` (default:
    the server's, 50 on relaykit's server)."""
    speech_engine: SpeechEngine | None
    """relaykit extension: ``"pocketsphinx"``, ``"whisper"`` or ``"auto"`` (the server's
    choice: grammar for hints, Whisper for open speech)."""
    partial_results: bool | None
    """Deliver interim results (``PromptAction.partials``)."""
    send_start_of_input: bool | None
    """Send an event as soon as input starts."""
    barge_in: bool | None
    """Stop the media when input starts (relaykit extension; default true)."""
    language: str | None
    """The TTS language, e.g. ``"en-US"``, of ``prompt_tts`` and of ``ask``'s text; other
    prompts ignore it, as the v2 SDK does."""
    gender: Gender | None
    """The TTS voice of ``prompt_tts`` and of ``ask``'s text; other prompts ignore it."""
    duration: float | None
    """Seconds of ringtone for ``prompt_ringtone``; other prompts ignore it."""


_PROMPT_OPTIONS = PromptOptions.__optional_keys__


class RecordOptions(TypedDict, total=False):
    """The options of [record_async][relaykit.client.Call.record_async] and
    [record][relaykit.client.Call.record]; one left out or None is not sent, so the server's
    default applies."""

    beep: bool | None
    """Play a beep to the caller first; recording starts after it."""
    record_format: RecordFormat | None
    """``"mp3"`` (the server's default where it can) or ``"wav"``."""
    stereo: bool | None
    """Two channels, the caller left and what the caller hears right."""
    direction: AudioDirection | None
    """``"speak"`` what the caller says (default), ``"listen"`` what the caller hears,
    ``"both"``."""
    initial_timeout: float | None
    """Seconds to wait for speech; none: the recording ends ``no_input`` (0: wait for ever;
    default 5)."""
    end_silence_timeout: float | None
    """Seconds of silence after speech that end it (0: never; default 1)."""
    terminators: str | None
    """Keys that end it (default ``"#*"``)."""


_RECORD_OPTIONS = RecordOptions.__optional_keys__


class MachineDetectOptions(TypedDict, total=False):
    """The options of answering-machine detection
    ([detect_answering_machine][relaykit.client.Call.detect_answering_machine], its ``_async``
    form, ``detect_human``, ``detect_machine``); one left out or None is not sent, so the
    server's default applies."""

    timeout: float | None
    """The most seconds the detector runs (default 30)."""
    initial_timeout: float | None
    """Seconds to wait for the first speech (default 4.5)."""
    end_silence_timeout: float | None
    """Silence that ends a greeting (default 1)."""
    machine_voice_threshold: float | None
    """A greeting this long (s) is a machine (default 1.25)."""
    machine_words_threshold: int | None
    """A greeting of this many words is a machine (default 6)."""


_MACHINE_DETECT_OPTIONS = MachineDetectOptions.__optional_keys__


class DetectOptions(MachineDetectOptions, total=False):
    """The options of [detect_async][relaykit.client.Call.detect_async] and
    [detect][relaykit.client.Call.detect]: the machine detector's, and these two."""

    tone: FaxTone | None
    """fax: ``"CED"`` or ``"CNG"`` only (default: either)."""
    digits: str | None
    """digit: the keys to report (default ``"0123456789#*"``)."""


_DETECT_OPTIONS = DetectOptions.__optional_keys__


def _given(options: Mapping[str, Any], accepted: frozenset[str], what: str) -> dict[str, Any]:
    """The options passed with a value (not None); TypeError names one ``what`` does not take."""
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"unexpected keyword argument {unknown[0]!r}; "
            f"{what} options are {', '.join(sorted(accepted))}"
        )
    return {name: value for name, value in options.items() if value is not None}


class CallingClient(CommandSender, Protocol):
    """What calls need from their client (``Client`` provides it)."""

    @property
    def request_timeout(self) -> float: ...

    @property
    def calling(self) -> Calling: ...

    async def receive(self, contexts: list[str]) -> None: ...

    def _spawn(self, awaitable: Awaitable[Any]) -> None: ...


class Call:
    """One call. Blocking methods return a Result; each ``*_async`` returns an Action."""

    def __init__(
        self,
        client: CallingClient,
        *,
        call_id: str | None = None,
        node_id: str | None = None,
        context: str | None = None,
        device: Mapping[str, Any] | None = None,
        state: str = "none",
        direction: str = "inbound",
    ) -> None:
        device = device or {}
        raw_params = device.get("params")
        dparams: Mapping[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        self.client = client
        self.id = call_id
        self.node_id = node_id
        self.tag = str(uuid.uuid4())
        self.context = context
        self.direction = direction
        self.call_type: str = str(device.get("type", "phone"))
        self.from_number: str | None = dparams.get("from_number")
        self.to_number: str | None = dparams.get("to_number")
        self.timeout: int | None = dparams.get("timeout")
        self.state = state
        self.prev_state = "none"
        self.end_reason: str | None = None
        self.busy = False
        self.failed = False
        self.peer: Call | None = None  # the other leg while connected
        self._components: dict[str, Component] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._state_changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Call id={self.id!r} state={self.state!r} {self.from_number} -> {self.to_number}>"

    # -- properties ---------------------------------------------------------------------------
    @property
    def answered(self) -> bool:
        """The call is answered."""
        return self.state == "answered"

    @property
    def active(self) -> bool:
        """The call has not ended yet."""
        return self.state != "ended"

    @property
    def ended(self) -> bool:
        """The call is ending or has ended."""
        return self.state in ("ending", "ended")

    @property
    def device(self) -> dict[str, Any]:
        """The v2 device object: ``{"type": "phone", "params": {"from_number", "to_number"}}``
        (a ``sip`` call's params are ``from`` and ``to``)."""
        params: dict[str, Any] = {"from_number": self.from_number, "to_number": self.to_number}
        if self.call_type == "sip":
            params = {"from": self.from_number, "to": self.to_number}
        if self.timeout is not None:
            params["timeout"] = self.timeout
        return {"type": self.call_type, "params": params}

    # -- callbacks ----------------------------------------------------------------------------
    def on(self, name: str, callback: Handler) -> Call:
        """Call ``callback(params)`` on ``name``: a state, ``stateChange``, ``play.<state>``,
        ``play.stateChange``, ``prompt`` (every collect event), ``record.<state>``,
        ``record.stateChange``, ``tap.<state>``, ``tap.stateChange``, ``detect.update``
        (each answer), ``detect.finished``, ``detect.error``, ``sendDigits.finished``,
        ``connect.<state>`` or ``connect.stateChange``."""
        self._handlers.setdefault(name, []).append(callback)
        return self

    def off(self, name: str, callback: Handler | None = None) -> Call:
        """Remove ``callback`` from ``name``, or every callback of ``name`` if None."""
        if callback is None:
            self._handlers.pop(name, None)
        elif callback in self._handlers.get(name, []):
            self._handlers[name].remove(callback)
        return self

    def _fire(self, name: str, params: dict[str, Any]) -> None:
        callbacks = self._handlers.get(name)
        if not callbacks:
            return
        for callback in list(callbacks):
            try:
                outcome = callback(params)
                if inspect.isawaitable(outcome):
                    self.client._spawn(outcome)
            except Exception:
                log.exception("! call handler for %r failed", name)

    # -- call control -------------------------------------------------------------------------
    async def answer(self) -> AnswerResult:
        """Answer; successful only if the call really reaches ``answered``."""
        try:
            await self.client.execute(calling.ANSWER, {"node_id": self.node_id, "call_id": self.id})
        except RelayError as exc:
            log.warning("! answer failed: %s", exc)
            return AnswerResult(False, Event("error", {"message": str(exc)}))
        await self.wait_for("answered", "ending", "ended", timeout=self.client.request_timeout)
        return AnswerResult(self.state == "answered", Event(self.state, {"call_state": self.state}))

    async def hangup(self, reason: EndReason = "hangup") -> HangupResult:
        """End the call with ``reason``; successful once it has ended."""
        if self.state == "ended":
            return HangupResult(True, self.end_reason, Event("ended", {"call_state": "ended"}))
        try:
            await self.client.execute(
                calling.END, {"node_id": self.node_id, "call_id": self.id, "reason": reason}
            )
        except RelayError as exc:
            log.warning("! hangup failed: %s", exc)
            return HangupResult(False, None, Event("error", {"message": str(exc)}))
        await self.wait_for("ended", timeout=self.client.request_timeout)
        return HangupResult(
            self.state == "ended", self.end_reason, Event(self.state, {"call_state": self.state})
        )

    async def dial(self) -> DialResult[Call]:
        """Place this call (made by ``client.calling.new_call``) and wait until it is
        answered or has ended: ``successful`` once answered."""
        if self.id is not None or self.state != "none":
            raise RuntimeError("dial() places a call made by calling.new_call(), once")
        self.client.calling._placing(self)
        try:
            reply = await self.client.execute(
                calling.BEGIN, {"tag": self.tag, "device": self.device}
            )
        except RelayError as exc:
            log.warning("! dial failed: %s", exc)
            self.client.calling._forget(self)
            return DialResult(False, self, Event("error", {"message": str(exc)}))
        if self.id is None and isinstance(reply.get("call_id"), str):
            self.client.calling._adopt(self, reply["call_id"], reply.get("node_id"))
        ring = float(self.timeout or calling.DEFAULT_DEVICE_TIMEOUT)
        await self.wait_for(
            "answered", "ending", "ended", timeout=ring + self.client.request_timeout
        )
        return DialResult(
            self.state == "answered", self, Event(self.state, {"call_state": self.state})
        )

    async def connect_async(
        self,
        device_list: Sequence[Mapping[str, Any] | Sequence[Mapping[str, Any]]],
        ringback_list: Sequence[Mapping[str, Any]] | None = None,
    ) -> ConnectAction[Call]:
        """Start connecting the call to the first of ``device_list`` that answers; returns a
        ConnectAction at once.

        Args:
            device_list: each device dict rings on its own, one after the other (in series);
                a list of device dicts rings together (in parallel). A device is v2's
                ``{"to_number": "+1…", "from_number": "+1…", "timeout": 30}`` (a phone;
                ``from_number`` and ``timeout`` default to this call's) or the wire form,
                ``{"type": "sip", "params": {"to": "sip:…", "from": "sip:…"}}``.
            ringback_list: media played to this call while the devices ring (as for
                :meth:`play`; it repeats until one answers).

        When a device answers, the two calls hear each other until either hangs up or
        :meth:`disconnect`: the other leg hanging up leaves this call up (``connect.
        disconnected``), this call hanging up ends the other.
        """
        payload: dict[str, Any] = {
            "devices": build_devices(device_list, self.from_number, self.timeout)
        }
        if ringback_list:
            payload["ringback"] = build_media_list(ringback_list)
        component: ConnectComponent[Call] = ConnectComponent(self, payload)
        await component.execute()
        return ConnectAction(component)

    async def connect(
        self,
        device_list: Sequence[Mapping[str, Any] | Sequence[Mapping[str, Any]]],
        ringback_list: Sequence[Mapping[str, Any]] | None = None,
    ) -> ConnectResult[Call]:
        """Connect the call (see :meth:`connect_async`) and wait until a device answers or
        none does: ``successful`` once bridged, ``call`` the other leg, ``reason`` why not."""
        return await (await self.connect_async(device_list, ringback_list)).wait()

    async def disconnect(self) -> DisconnectResult:
        """End the bridge of a connected call (both calls stay up); ``successful`` once
        disconnected. A connect still ringing is cancelled instead (unsuccessful)."""
        component: DisconnectComponent[Call] = DisconnectComponent(self, {})
        await component.execute()
        try:
            await component.wait(self.client.request_timeout)
        except TimeoutError:
            component.terminate(error="no disconnected event within the request timeout")
        return DisconnectResult(component)

    async def wait_for(
        self,
        *states: CallState | Iterable[CallState],
        events: Iterable[CallState] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Wait until the call reaches one of the states (default ``ended``).

        States are given as arguments (``wait_for("answered", "ended")``), as a list
        (``wait_for(["answered"])``) or, as in the v2 SDK, as ``events=[…]``. Returns False if
        the call ends first or after ``timeout`` seconds.
        """
        wanted: set[str] = set()
        for state in (*states, *([events] if events is not None else [])):
            wanted.update([state] if isinstance(state, str) else state)
        wanted = wanted or {"ended"}
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.state not in wanted:
            if self.state == "ended":
                return False
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._state_changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def wait_for_ringing(self) -> bool:
        """Wait until the call rings; False if it ends first."""
        return await self.wait_for("ringing")

    async def wait_for_answered(self) -> bool:
        """Wait until the call is answered; False if it ends first."""
        return await self.wait_for("answered")

    async def wait_for_ending(self) -> bool:
        """Wait until the call starts ending; False if it ends without that state."""
        return await self.wait_for("ending")

    async def wait_for_ended(self) -> bool:
        """Wait until the call has ended."""
        return await self.wait_for("ended")

    # -- play ---------------------------------------------------------------------------------
    async def play_async(
        self, media_list: Sequence[Mapping[str, Any]], volume: float = 0
    ) -> PlayAction:
        """Start playing ``media_list`` at ``volume`` dB (-40 to 40); returns at once.

        Media dicts are flat (``{"type": "tts", "text": "Hi"}``) or nested
        (``{"type": "tts", "params": {"text": "Hi"}}``); types audio, tts, silence, ringtone.
        """
        payload: dict[str, Any] = {"play": build_media_list(media_list)}
        if volume:
            payload["volume"] = float(volume)
        component = PlayComponent(self, payload)
        await component.execute()
        return PlayAction(component)

    async def play(self, media_list: Sequence[Mapping[str, Any]], volume: float = 0) -> PlayResult:
        """Play ``media_list`` (see :meth:`play_async`) and wait until it ends."""
        return await (await self.play_async(media_list, volume)).wait()

    async def play_audio_async(self, url: str, volume: float = 0) -> PlayAction:
        """Start playing the audio file at ``url``; returns at once."""
        return await self.play_async([{"type": "audio", "url": url}], volume)

    async def play_audio(self, url: str, volume: float = 0) -> PlayResult:
        """Play the audio file at ``url`` and wait until it ends."""
        return await self.play([{"type": "audio", "url": url}], volume)

    async def play_tts_async(
        self,
        text: str,
        language: str | None = None,
        gender: Gender | None = None,
        volume: float = 0,
    ) -> PlayAction:
        """Start speaking ``text`` (``language`` e.g. "en-US"); returns at once."""
        return await self.play_async([_tts(text, language, gender)], volume)

    async def play_tts(
        self,
        text: str,
        language: str | None = None,
        gender: Gender | None = None,
        volume: float = 0,
    ) -> PlayResult:
        """Speak ``text`` (``language`` e.g. "en-US") and wait until it ends."""
        return await self.play([_tts(text, language, gender)], volume)

    async def play_silence_async(self, duration: float) -> PlayAction:
        """Start ``duration`` seconds of silence; returns at once."""
        return await self.play_async([{"type": "silence", "duration": float(duration)}])

    async def play_silence(self, duration: float) -> PlayResult:
        """Play ``duration`` seconds of silence and wait until they end."""
        return await self.play([{"type": "silence", "duration": float(duration)}])

    async def play_ringtone_async(
        self, name: str, duration: float | None = None, volume: float = 0
    ) -> PlayAction:
        """Start the ringtone ``name`` (e.g. "us") for ``duration`` seconds; returns at once."""
        return await self.play_async([_ringtone(name, duration)], volume)

    async def play_ringtone(
        self, name: str, duration: float | None = None, volume: float = 0
    ) -> PlayResult:
        """Play the ringtone ``name`` (e.g. "us") for ``duration`` seconds and wait."""
        return await self.play([_ringtone(name, duration)], volume)

    # -- prompt -------------------------------------------------------------------------------
    async def prompt_async(
        self,
        prompt_type: PromptType,
        media_list: Sequence[Mapping[str, Any]],
        **options: Unpack[PromptOptions],
    ) -> PromptAction:
        """Start playing ``media_list`` and collecting input; returns a PromptAction at once.

        Args:
            prompt_type: collect ``"digits"``, ``"speech"`` or ``"both"``.
            media_list: what to play, as for :meth:`play_async`.
            **options: the [prompt options][relaykit.client.PromptOptions] (``volume``,
                ``digits_max``, ``speech_hints``, …); ``language``, ``gender`` and
                ``duration`` are ignored here, as in the v2 SDK.

        An option left out or None is not sent, so the server's default applies. ``digits_*``
        options need prompt_type "digits" or "both", the speech ones "speech" or "both";
        otherwise ValueError names the option.
        """
        given = _given(options, _PROMPT_OPTIONS, "prompt")
        volume = given.pop("volume", None)
        play = build_media_list(media_list)
        collect = build_collect(prompt_type, given)
        payload: dict[str, Any] = {"play": play, "collect": collect}
        if volume is not None:
            payload["volume"] = float(volume)
        component = PromptComponent(self, payload, prompt_type)
        await component.execute()
        return PromptAction(component)

    async def prompt(
        self,
        prompt_type: PromptType,
        media_list: Sequence[Mapping[str, Any]],
        **options: Unpack[PromptOptions],
    ) -> PromptResult:
        """Play ``media_list``, collect input and wait for the result.

        Arguments and [options][relaykit.client.PromptOptions] as for :meth:`prompt_async`.
        """
        return await (await self.prompt_async(prompt_type, media_list, **options)).wait()

    async def prompt_audio_async(
        self, prompt_type: PromptType, url: str, **options: Unpack[PromptOptions]
    ) -> PromptAction:
        """Start playing the audio file at ``url`` and collecting input; returns at once.

        [Options][relaykit.client.PromptOptions] as for :meth:`prompt_async`.
        """
        return await self.prompt_async(prompt_type, [{"type": "audio", "url": url}], **options)

    async def prompt_audio(
        self, prompt_type: PromptType, url: str, **options: Unpack[PromptOptions]
    ) -> PromptResult:
        """Play the audio file at ``url``, collect input and wait for the result.

        [Options][relaykit.client.PromptOptions] as for :meth:`prompt_async`.
        """
        return await (await self.prompt_audio_async(prompt_type, url, **options)).wait()

    async def prompt_tts_async(
        self, prompt_type: PromptType, text: str, **options: Unpack[PromptOptions]
    ) -> PromptAction:
        """Start speaking ``text`` (in the options' ``language``, e.g. "en-US", and ``gender``)
        and collecting input; returns at once.

        [Options][relaykit.client.PromptOptions] as for :meth:`prompt_async`.
        """
        media = [_tts(text, options.get("language"), options.get("gender"))]
        return await self.prompt_async(prompt_type, media, **options)

    async def prompt_tts(
        self, prompt_type: PromptType, text: str, **options: Unpack[PromptOptions]
    ) -> PromptResult:
        """Speak ``text`` (in the options' ``language`` and ``gender``), collect input and wait
        for the result.

        [Options][relaykit.client.PromptOptions] as for :meth:`prompt_async`.
        """
        return await (await self.prompt_tts_async(prompt_type, text, **options)).wait()

    async def prompt_ringtone_async(
        self, prompt_type: PromptType, name: str, **options: Unpack[PromptOptions]
    ) -> PromptAction:
        """Start playing the ringtone ``name`` (for the options' ``duration`` in seconds) and
        collecting input; returns at once.

        [Options][relaykit.client.PromptOptions] as for :meth:`prompt_async`.
        """
        media = [_ringtone(name, options.get("duration"), convert=False)]
        return await self.prompt_async(prompt_type, media, **options)

    async def prompt_ringtone(
        self, prompt_type: PromptType, name: str, **options: Unpack[PromptOptions]
    ) -> PromptResult:
        """Play the ringtone ``name`` (for the options' ``duration`` in seconds), collect input
        and wait for the result.

        [Options][relaykit.client.PromptOptions] as for :meth:`prompt_async`.
        """
        return await (await self.prompt_ringtone_async(prompt_type, name, **options)).wait()

    # -- ask: a prompt with checks and retries (relaykit) -------------------------------------
    async def ask(
        self,
        prompt_type: PromptType,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        min_digits: int | None = None,
        valid: str | re.Pattern[str] | Callable[[str], bool] | None = None,
        tries: int = 1,
        invalid: str | Sequence[Mapping[str, Any]] | None = None,
        **options: Unpack[PromptOptions],
    ) -> AskResult:
        """Prompt until the input is valid, at most ``tries`` times (FreeSWITCH's
        ``play_and_get_digits`` in one call; relaykit only).

        Args:
            prompt_type: ``"digits"``, ``"speech"`` or ``"both"``, as for :meth:`prompt`.
            prompt: text to speak (TTS, in the options' ``language`` and ``gender``) or a
                media list.
            min_digits: fewer keys than this are refused (``digits_max`` is the most).
            valid: a regular expression the whole input must match (digits or the recognised
                text), or a function that returns True for valid input.
            tries: how many times to prompt in all.
            invalid: text or media played after a failed try (refused input, no input, no
                match) when another try follows.
            **options: the [prompt options][relaykit.client.PromptOptions], as for
                :meth:`prompt`; ``language`` and ``gender`` are those of ``prompt`` and
                ``invalid`` given as text.

        Returns an :class:`AskResult`: successful with the valid input, or unsuccessful after
        the last try (``no_match`` with reason ``min_digits``/``invalid`` for refused input).
        An error or the call ending stops at once, unsuccessful.
        """
        if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
            raise ValueError(f"tries must be a whole number of at least 1, not {tries!r}")
        if min_digits is not None:
            if prompt_type == "speech":
                raise ValueError("min_digits needs prompt_type 'digits' or 'both'")
            if isinstance(min_digits, bool) or not isinstance(min_digits, int) or min_digits < 1:
                raise ValueError(
                    f"min_digits must be a whole number of at least 1, not {min_digits!r}"
                )
            digits_max = options.get("digits_max")
            if digits_max is not None and min_digits > digits_max:
                raise ValueError(
                    f"min_digits ({min_digits}) is more than digits_max ({digits_max})"
                )
        check = _input_check(valid)
        language, gender = options.get("language"), options.get("gender")
        media = [_tts(prompt, language, gender)] if isinstance(prompt, str) else list(prompt)
        retry = None
        if invalid is not None:
            retry = [_tts(invalid, language, gender)] if isinstance(invalid, str) else list(invalid)
            build_media_list(retry)  # a bad media list fails now, not after the first try
        attempts: list[PromptResult] = []
        while True:
            result = await self.prompt(prompt_type, media, **options)
            attempts.append(result)
            refused = None
            if result.successful:
                value = result.result or ""
                if result.prompt_type == "digit" and min_digits and len(value) < min_digits:
                    refused = "min_digits"
                elif check is not None and not check(value):
                    refused = "invalid"
                if refused is None:
                    return AskResult(_outcome(result), attempts)
            elif result.prompt_type not in ("no_input", "no_match") or self.ended:
                return AskResult(_outcome(result), attempts)
            if len(attempts) >= tries or self.ended:
                return AskResult(_outcome(result, refused), attempts)
            if retry is not None:
                await self.play(retry, options.get("volume") or 0)
                if self.ended:
                    return AskResult(_outcome(result, refused), attempts)

    # -- record -------------------------------------------------------------------------------
    async def record_async(
        self, record_type: str = "audio", **options: Unpack[RecordOptions]
    ) -> RecordAction:
        """Start recording the call; returns a RecordAction at once (``action.url`` is set).

        Args:
            record_type: what to record; only ``"audio"``.
            **options: the [record options][relaykit.client.RecordOptions] (``beep``,
                ``record_format``, ``direction``, …).

        An option left out or None is not sent, so the server's default applies. The file is
        fetched with an HTTP GET of the url once the recording has finished.
        """
        if record_type != "audio":
            raise ValueError(f"record_type must be 'audio', not {record_type!r}")
        audio = _given(options, _RECORD_OPTIONS, "record")
        if "record_format" in audio:
            audio["format"] = audio.pop("record_format")
        component = RecordComponent(self, {"record": {"audio": audio}})
        await component.execute()
        return RecordAction(component)

    async def record(
        self, record_type: str = "audio", **options: Unpack[RecordOptions]
    ) -> RecordResult:
        """Record the call until it ends ([options][relaykit.client.RecordOptions] as for
        :meth:`record_async`); the result has the file's ``url``, ``duration`` and ``size``."""
        return await (await self.record_async(record_type, **options)).wait()

    # -- send digits --------------------------------------------------------------------------
    async def send_digits_async(self, digits: str) -> SendDigitsAction:
        """Start playing ``digits`` as DTMF tones to the far end (``0-9 * # A-D``; ``w`` waits
        0.5 s, ``W`` 1 s); returns at once."""
        component = SendDigitsComponent(self, {"digits": digits})
        await component.execute()
        return SendDigitsAction(component)

    async def send_digits(self, digits: str) -> SendDigitsResult:
        """Play ``digits`` as DTMF tones to the far end and wait until the last one ends."""
        return await (await self.send_digits_async(digits)).wait()

    # -- detect -------------------------------------------------------------------------------
    async def _start_detect(
        self,
        detect_type: DetectType,
        options: Mapping[str, Any],
        accepted: frozenset[str],
        *,
        blocking: bool = False,
        wait_for_beep: bool = False,
    ) -> DetectComponent:
        params = _given(options, accepted, f"{detect_type} detection")
        payload: dict[str, Any] = {"detect": {"type": detect_type}}
        if "timeout" in params:
            payload["timeout"] = params.pop("timeout")
        payload["detect"]["params"] = params
        component = DetectComponent(self, payload, blocking=blocking, wait_for_beep=wait_for_beep)
        await component.execute()
        return component

    @staticmethod
    async def _first_answer(component: DetectComponent, expect: str | None = None) -> DetectResult:
        """Wait for a blocking detector's first answer, then stop it on the server."""
        await component.wait()
        if component.successful:  # answered: the detector would run on until its timeout
            await component._subcommand("stop")
        return DetectResult(component, expect=expect)

    async def detect_async(
        self,
        detect_type: DetectType,
        *,
        wait_for_beep: bool = False,
        **options: Unpack[DetectOptions],
    ) -> DetectAction:
        """Start a detector; returns a DetectAction at once. It completes when the detector
        ends (``timeout``, default 30 s; or ``stop()``), with every answer in ``result``.

        Args:
            detect_type: ``"digit"`` (keys), ``"fax"`` (fax tones) or ``"machine"``
                (answering-machine detection: HUMAN, MACHINE or UNKNOWN, then READY when a
                machine's greeting has ended, NOT_READY if it goes on after a pause).
            wait_for_beep: for the blocking :meth:`detect` only.
            **options: the [detect options][relaykit.client.DetectOptions] (``timeout``, the
                machine detector's thresholds, ``tone``, ``digits``).
        """
        component = await self._start_detect(
            detect_type, options, _DETECT_OPTIONS, wait_for_beep=wait_for_beep
        )
        return DetectAction(component)

    async def detect(
        self,
        detect_type: DetectType,
        *,
        wait_for_beep: bool = False,
        **options: Unpack[DetectOptions],
    ) -> DetectResult:
        """Detect and wait for the first answer ([options][relaykit.client.DetectOptions] as
        for :meth:`detect_async`).

        ``result`` is the key, ``CED``/``CNG``, ``HUMAN``, ``MACHINE`` or ``UNKNOWN``; with
        ``wait_for_beep`` a machine's answer comes once its greeting has ended (READY).
        ``successful`` is False when the detector ended without an answer. Unlike v2, the
        detector is then stopped on the server.
        """
        component = await self._start_detect(
            detect_type, options, _DETECT_OPTIONS, blocking=True, wait_for_beep=wait_for_beep
        )
        return await self._first_answer(component)

    async def detect_answering_machine(
        self, *, wait_for_beep: bool = False, **options: Unpack[MachineDetectOptions]
    ) -> DetectResult:
        """Answering-machine detection: ``result`` HUMAN, MACHINE or UNKNOWN (see
        :meth:`detect_async`; [options][relaykit.client.MachineDetectOptions])."""
        component = await self._start_detect(
            "machine", options, _MACHINE_DETECT_OPTIONS, blocking=True, wait_for_beep=wait_for_beep
        )
        return await self._first_answer(component)

    async def detect_answering_machine_async(
        self, *, wait_for_beep: bool = False, **options: Unpack[MachineDetectOptions]
    ) -> DetectAction:
        """Start answering-machine detection; returns a DetectAction at once
        ([options][relaykit.client.MachineDetectOptions])."""
        component = await self._start_detect(
            "machine", options, _MACHINE_DETECT_OPTIONS, wait_for_beep=wait_for_beep
        )
        return DetectAction(component)

    amd = detect_answering_machine
    amd_async = detect_answering_machine_async

    async def detect_human(self, **options: Unpack[MachineDetectOptions]) -> DetectResult:
        """Answering-machine detection whose result is ``successful`` only for a HUMAN
        (v2's earlier ``detectHuman``; [options][relaykit.client.MachineDetectOptions])."""
        component = await self._start_detect(
            "machine", options, _MACHINE_DETECT_OPTIONS, blocking=True
        )
        return await self._first_answer(component, expect="HUMAN")

    async def detect_machine(
        self, *, wait_for_beep: bool = False, **options: Unpack[MachineDetectOptions]
    ) -> DetectResult:
        """Answering-machine detection whose result is ``successful`` only for a MACHINE
        (v2's earlier ``detectMachine``; [options][relaykit.client.MachineDetectOptions])."""
        component = await self._start_detect(
            "machine", options, _MACHINE_DETECT_OPTIONS, blocking=True, wait_for_beep=wait_for_beep
        )
        return await self._first_answer(component, expect="MACHINE")

    async def detect_fax(
        self, tone: FaxTone | None = None, timeout: float | None = None
    ) -> DetectResult:
        """Wait for a fax tone (``tone`` CED or CNG only; default either): ``result`` is it."""
        return await self.detect("fax", tone=tone, timeout=timeout)

    async def detect_fax_async(
        self, tone: FaxTone | None = None, timeout: float | None = None
    ) -> DetectAction:
        """Start detecting fax tones; returns a DetectAction at once."""
        return await self.detect_async("fax", tone=tone, timeout=timeout)

    async def detect_digit(
        self, digits: str | None = None, timeout: float | None = None
    ) -> DetectResult:
        """Wait for the caller to press one of ``digits`` (default any): ``result`` is it."""
        return await self.detect("digit", digits=digits, timeout=timeout)

    async def detect_digit_async(
        self, digits: str | None = None, timeout: float | None = None
    ) -> DetectAction:
        """Start reporting the caller's keys; returns a DetectAction at once."""
        return await self.detect_async("digit", digits=digits, timeout=timeout)

    # -- tap ----------------------------------------------------------------------------------
    async def tap_async(
        self,
        audio_direction: AudioDirection,
        target_type: TapTargetType,
        target_addr: str | None = None,
        target_port: int | None = None,
        target_ptime: int | None = None,
        target_uri: str | None = None,
        rate: int | None = None,
        codec: TapCodec | None = None,
    ) -> TapAction:
        """Start streaming the call's audio as RTP; returns a TapAction at once.

        Args:
            audio_direction: ``"speak"`` what the caller says, ``"listen"`` what the caller
                hears, ``"both"``.
            target_type: ``"rtp"`` (UDP to ``target_addr``:``target_port``) or ``"ws"`` (the
                same RTP packets as binary WebSocket messages to ``target_uri``).
            target_ptime: packet length in ms (10-60, default 20).
            rate: 8000 (G.711).
            codec: ``"PCMU"`` (default) or ``"PCMA"``.

        A target that cannot be reached fails the command: the action completes at once,
        unsuccessful.
        """
        params: dict[str, Any] = {
            "addr": target_addr,
            "port": None if target_port is None else int(target_port),
            "ptime": None if target_ptime is None else int(target_ptime),
            "uri": target_uri,
            "rate": None if rate is None else int(rate),
            "codec": codec,
        }
        payload = {
            "tap": {"type": "audio", "params": {"direction": audio_direction}},
            "device": {
                "type": target_type,
                "params": {key: value for key, value in params.items() if value is not None},
            },
        }
        component = TapComponent(self, payload)
        await component.execute()
        return TapAction(component)

    async def tap(
        self,
        audio_direction: AudioDirection,
        target_type: TapTargetType,
        target_addr: str | None = None,
        target_port: int | None = None,
        target_ptime: int | None = None,
        target_uri: str | None = None,
        rate: int | None = None,
        codec: TapCodec | None = None,
    ) -> TapResult:
        """Stream the call's audio until the tap ends (options as for :meth:`tap_async`)."""
        action = await self.tap_async(
            audio_direction,
            target_type,
            target_addr,
            target_port,
            target_ptime,
            target_uri,
            rate,
            codec,
        )
        return await action.wait()

    # -- event routing (called by Calling) ----------------------------------------------------
    def _register(self, component: Component) -> None:
        self._components[component.control_id] = component

    def _unregister(self, component: Component) -> None:
        self._components.pop(component.control_id, None)

    def _on_state(self, params: dict[str, Any]) -> None:
        state = params.get("call_state")
        if state not in _STATES:
            log.warning("! unknown call_state %r", state)
            return
        if state != self.state:
            self.prev_state, self.state = self.state, state
        if isinstance(params.get("end_reason"), str):
            self.end_reason = params["end_reason"]
            self.busy = self.end_reason == "busy"
            self.failed = self.end_reason == "error"
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        self._fire("stateChange", params)
        self._fire(state, params)
        if state == "ended":
            for component in list(self._components.values()):
                component.terminate(params)
            self._handlers.clear()

    def _on_component_event(self, event_type: str, params: dict[str, Any]) -> None:
        if event_type == calling.PLAY_EVENT:
            state = params.get("state")
            self._fire("play.stateChange", params)
            self._fire(f"play.{state}", params)
        elif event_type == calling.COLLECT_EVENT:
            self._fire("prompt", params)
        elif event_type in (calling.RECORD_EVENT, calling.TAP_EVENT):
            name = "record" if event_type == calling.RECORD_EVENT else "tap"
            self._fire(f"{name}.stateChange", params)
            self._fire(f"{name}.{params.get('state')}", params)
        elif event_type == calling.DETECT_EVENT:
            detect = params.get("detect")
            inner = detect.get("params") if isinstance(detect, dict) else None
            event = inner.get("event") if isinstance(inner, dict) else None
            self._fire(
                "detect.update" if event not in ("finished", "error") else f"detect.{event}", params
            )
        elif event_type == calling.SEND_DIGITS_EVENT:
            self._fire(f"sendDigits.{params.get('state')}", params)
        elif event_type == calling.CONNECT_EVENT:
            self._fire("connect.stateChange", params)
            self._fire(f"connect.{params.get('connect_state')}", params)
            for connect in list(self._components.values()):
                if connect.event_type == event_type:
                    connect.on_event(params)
            return
        component = self._components.get(str(params.get("control_id")))
        if component is not None and component.event_type == event_type:
            component.on_event(params)

    def _connection_lost(self) -> None:
        """Nothing will ever complete the running components: end them now."""
        for component in list(self._components.values()):
            component.terminate(error="connection to the RELAY server lost")


def _tts(text: str, language: str | None, gender: str | None) -> dict[str, Any]:
    media: dict[str, Any] = {"type": "tts", "text": text}
    if language is not None:
        media["language"] = language
    if gender is not None:
        media["gender"] = gender
    return media


def _input_check(
    valid: str | re.Pattern[str] | Callable[[str], bool] | None,
) -> Callable[[str], bool] | None:
    """``ask``'s ``valid`` as a function: a pattern must match the whole input."""
    if valid is None or callable(valid):
        return valid
    try:
        pattern = re.compile(valid)
    except re.error as exc:
        raise ValueError(f"valid is not a regular expression: {exc}") from None
    return lambda text: pattern.fullmatch(text) is not None


def _outcome(result: PromptResult, refused: str | None = None) -> PromptOutcome:
    """``result`` as ``ask`` reports it: as it came, or refused (``min_digits``/``invalid``)."""
    if refused is None:
        return PromptOutcome(
            result.successful,
            result.event,
            result.prompt_type,
            result.result,
            result.terminator,
            result.confidence,
            result.reason,
        )
    event = Event("no_match", {"reason": refused, "input": result.result})
    return PromptOutcome(
        False, event, "no_match", result.result, result.terminator, result.confidence, refused
    )


def _ringtone(name: str, duration: float | None, *, convert: bool = True) -> dict[str, Any]:
    media: dict[str, Any] = {"type": "ringtone", "name": name}
    if duration is not None:
        media["duration"] = float(duration) if convert else duration
    return media


class Calling:
    """``client.calling``: the live calls and the routing of calling events to them."""

    def __init__(self, client: CallingClient) -> None:
        self.client = client
        self._calls: dict[str, Call] = {}
        self._dialling: dict[str, Call] = {}  # calls placed and not heard of yet, by tag
        self.on_incoming: Callable[[Call], Any] | None = None

    @property
    def calls(self) -> list[Call]:
        """The calls in progress."""
        return list(self._calls.values())

    def new_call(
        self,
        *,
        call_type: str = "phone",
        from_number: str,
        to_number: str,
        timeout: int | None = None,
    ) -> Call:
        """A call to place with :meth:`Call.dial`; nothing is sent yet. ``call_type`` is
        ``phone`` (numbers) or ``sip`` (``sip:`` URIs); ``timeout``: seconds it may ring."""
        params: dict[str, Any] = {"from_number": from_number, "to_number": to_number}
        if timeout is not None:
            params["timeout"] = timeout
        return Call(self.client, device={"type": call_type, "params": params}, direction="outbound")

    async def dial(
        self,
        *,
        call_type: str = "phone",
        from_number: str,
        to_number: str,
        timeout: int | None = None,
    ) -> DialResult[Call]:
        """Place a call and wait until it is answered or has ended (see :meth:`new_call`)."""
        call = self.new_call(
            call_type=call_type, from_number=from_number, to_number=to_number, timeout=timeout
        )
        return await call.dial()

    def _placing(self, call: Call) -> None:
        self._dialling[call.tag] = call

    def _forget(self, call: Call) -> None:
        self._dialling.pop(call.tag, None)

    def _adopt(self, call: Call, call_id: str, node_id: Any) -> None:
        """A placed call learns its id (from the first state event or the reply)."""
        self._dialling.pop(call.tag, None)
        call.id = call_id
        if isinstance(node_id, str):
            call.node_id = node_id
        self._calls[call_id] = call

    async def receive(self, contexts: list[str], handler: Callable[[Call], Any]) -> None:
        """v2 ``client.calling.receive``: offer inbound calls on ``contexts`` to ``handler``."""
        self.on_incoming = handler
        await self.client.receive(list(contexts))

    def dispatch(self, event_type: str, params: dict[str, Any]) -> None:
        """Route one ``relay`` event to its call (a new Call for ``calling.call.receive``)."""
        if event_type == calling.CALL_RECEIVE:
            call_id = params.get("call_id")
            if not isinstance(call_id, str):
                log.warning("! calling.call.receive without call_id")
                return
            device = params.get("device")
            call = Call(
                self.client,
                call_id=call_id,
                node_id=params.get("node_id"),
                context=params.get("context"),
                device=device if isinstance(device, dict) else None,
                state=str(params.get("call_state", "created")),
                direction=str(params.get("direction", "inbound")),
            )
            self._calls[call_id] = call
            if self.on_incoming is not None:
                outcome = self.on_incoming(call)
                if inspect.isawaitable(outcome):
                    self.client._spawn(outcome)
            return
        known = self._calls.get(str(params.get("call_id")))
        if known is None and event_type == calling.CALL_STATE:
            known = self._new_leg(params)
        if known is None:
            return
        if event_type == calling.CALL_STATE:
            known._on_state(params)
            if known.state == "ended":
                self._calls.pop(known.id or "", None)
            return
        if event_type == calling.CONNECT_EVENT:
            peer = params.get("peer")
            peer_id = peer.get("call_id") if isinstance(peer, dict) else None
            connected = params.get("connect_state") == "connected"
            known.peer = self._calls.get(str(peer_id)) if connected else None
        known._on_component_event(event_type, params)

    def _new_leg(self, params: dict[str, Any]) -> Call | None:
        """The call a state event names, if it is new to us: one we placed (known by its
        ``tag``), or a leg a connect placed (it names its ``peer``)."""
        call_id = params.get("call_id")
        if not isinstance(call_id, str):
            return None
        placed = self._dialling.get(str(params.get("tag")))
        if placed is not None:
            self._adopt(placed, call_id, params.get("node_id"))
            return placed
        if not isinstance(params.get("peer"), dict):
            return None
        device = params.get("device")
        leg = Call(
            self.client,
            call_id=call_id,
            node_id=params.get("node_id"),
            device=device if isinstance(device, dict) else None,
            direction=str(params.get("direction", "outbound")),
        )
        self._calls[call_id] = leg
        return leg

    def connection_lost(self) -> None:
        """End every running action: nothing will ever complete them."""
        for call in list(self._calls.values()):
            call._connection_lost()
