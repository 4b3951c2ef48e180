"""The SDK's typed surface, as a user's type checker and interpreter see it.

mypy runs on small IVRs written the way an app would write them; the import test runs in a fresh
interpreter, since the test process has long loaded numpy.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Unpack, get_args, get_type_hints

import pytest

from relaykit.client import (
    Call,
    CallState,
    DetectOptions,
    EndReason,
    Gender,
    MachineDetectOptions,
    PromptOptions,
    PromptType,
    RecordOptions,
)
from relaykit.client.payloads import IGNORED_KWARGS, PROMPT_KWARGS, PROMPT_TYPES
from relaykit.protocol import calling

MYPY_TIME_LIMIT = 300  # seconds; a cold run takes a few

PROMPT_METHODS = ["prompt", "prompt_audio", "prompt_tts", "prompt_ringtone"]


def run_mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """mypy --strict on ``source`` as an app module, outside the repository's configuration."""
    app = tmp_path / "ivr_app.py"
    app.write_text(textwrap.dedent(source))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            app.name,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=MYPY_TIME_LIMIT,
    )


def errors_by_line(output: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for match in re.finditer(r"^ivr_app\.py:(\d+): error: (.*)$", output, re.MULTILINE):
        found.setdefault(int(match[1]), []).append(match[2])
    return found


def test_mypy_reports_a_misspelt_option_and_a_wrongly_typed_one_by_name(tmp_path):
    """``digits_maxx=3`` and ``digits_max="3"`` are both type errors that name the option."""
    result = run_mypy(
        tmp_path,
        """\
        from relaykit import Call


        async def ivr(call: Call) -> None:
            await call.answer()
            await call.prompt_tts("digits", "Enter your PIN", digits_maxx=3)
            await call.prompt_tts_async("digits", "Enter your PIN", digits_max="3")
        """,
    )
    errors = errors_by_line(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert set(errors) == {6, 7}, result.stdout
    (misspelt,) = errors[6]
    assert 'Unexpected keyword argument "digits_maxx"' in misspelt
    assert '"prompt_tts" of "Call"' in misspelt
    (wrong_type,) = errors[7]
    assert 'Argument "digits_max"' in wrong_type
    assert 'incompatible type "str"' in wrong_type
    assert '"int | None"' in wrong_type


def test_mypy_checks_the_options_of_ask_record_detect_and_of_an_options_dict(tmp_path):
    """ask takes the prompt options with their types too, record and the detectors theirs, and
    an options dict built once is checked where it is built and where it is passed."""
    result = run_mypy(
        tmp_path,
        """\
        from relaykit import Call, MachineDetectOptions, PromptOptions


        async def ivr(call: Call) -> None:
            await call.ask("digits", "Enter your PIN", min_digits=4, digits_maxx=4)
            await call.ask("digits", "Enter your PIN", speech_engine="sphinx")
            pin: PromptOptions = {"digits_max": 4, "digits_terminators": "#"}
            await call.prompt_ringtone("digits", "us", **pin)
            await call.ask("digits", "Enter your PIN", tries=3, **pin)
            typo: PromptOptions = {"digit_max": 4}
            await call.prompt_audio_async("digits", "https://example.com/a.wav", volume="loud")
            await call.record(record_fromat="wav")
            await call.detect_answering_machine(tone="CED")
            await call.detect_human(wait_for_beep=True)
            await call.detect_async("fax", tone="XYZ", timeout=5)
            amd: MachineDetectOptions = {"timeout": 10, "machine_words_threshold": 4}
            await call.detect_machine(wait_for_beep=True, **amd)
            await call.detect("machine", **amd)
        """,
    )
    errors = errors_by_line(result.stdout)
    assert set(errors) == {5, 6, 10, 11, 12, 13, 14, 15}, result.stdout
    (misspelt,) = errors[5]
    assert 'Unexpected keyword argument "digits_maxx" for "ask" of "Call"' in misspelt
    (engine,) = errors[6]
    assert 'Argument "speech_engine" to "ask"' in engine and "Literal['sphinx']" in engine
    (typo,) = errors[10]
    assert '"digit_max"' in typo and '"PromptOptions"' in typo
    (volume,) = errors[11]
    assert 'Argument "volume" to "prompt_audio_async"' in volume
    assert 'incompatible type "str"' in volume
    expected = {
        12: 'Unexpected keyword argument "record_fromat" for "record" of "Call"',
        13: 'Unexpected keyword argument "tone" for "detect_answering_machine" of "Call"',
        14: 'Unexpected keyword argument "wait_for_beep" for "detect_human" of "Call"',
        15: 'Argument "tone" to "detect_async" of "Call"',
    }
    for line, text in expected.items():
        (message,) = errors[line]
        assert text in message, message


def test_mypy_refuses_values_outside_the_literal_options(tmp_path):
    """A prompt type, gender, hang-up reason or call state that does not exist is refused."""
    result = run_mypy(
        tmp_path,
        """\
        from relaykit import Call


        async def ivr(call: Call) -> None:
            await call.prompt_tts("dtmf", "Press a key")
            await call.play_tts("Hello", gender="robot")
            await call.hangup("rude")
            await call.wait_for("answred")
            await call.prompt_tts("speech", "Say yes", speech_hints="yes")
        """,
    )
    errors = errors_by_line(result.stdout)
    assert set(errors) == {5, 6, 7, 8, 9}, result.stdout
    expected = {
        5: ('Argument 1 to "prompt_tts"', "Literal['dtmf']"),
        6: ('Argument "gender" to "play_tts"', "Literal['robot']"),
        7: ('Argument 1 to "hangup"', "Literal['rude']"),
        8: ('Argument 1 to "wait_for"', "Literal['answred']"),
        9: ('Argument "speech_hints" to "prompt_tts"', 'incompatible type "str"'),
    }
    for line, (argument, value) in expected.items():
        (message,) = errors[line]
        assert argument in message and value in message, message


def test_mypy_accepts_a_correct_ivr_and_types_its_results(tmp_path):
    """A correct IVR passes --strict, and results are typed (not Any) all the way through."""
    result = run_mypy(
        tmp_path,
        """\
        from relaykit import Call, Consumer, PromptResult


        async def read_pin(call: Call) -> str | None:
            action = await call.prompt_tts_async(
                "digits",
                "Enter your PIN, then press pound.",
                language="en-US",
                gender="female",
                volume=-3,
                digits_max=4,
                digits_terminators="#",
                digits_timeout=5.0,
                initial_timeout=10,
            )
            result = await action.wait()
            return result.result


        async def menu(call: Call) -> PromptResult:
            return await call.prompt_audio(
                "both",
                "https://example.com/menu.wav",
                digits_max=1,
                speech_hints=["sales", "support"],
                speech_language="en-US",
                end_silence_timeout=1.0,
                speech_timeout=30,
                partial_results=True,
                send_start_of_input=True,
                barge_in=False,
            )


        class Ivr(Consumer):
            contexts = ["office"]

            async def on_incoming_call(self, call: Call) -> None:
                await call.answer()
                pin = await read_pin(call)
                choice = await menu(call)
                stopped = await (await call.play_ringtone_async("us", 5.0)).stop()
                print(pin, choice.prompt_type, choice.confidence, stopped.successful)
                await call.prompt(
                    "speech", [{"type": "tts", "text": "Goodbye?"}], speech_timeout=5
                )
                await call.prompt_ringtone("digits", "us", duration=2, digits_max=1)
                await call.play_tts("Goodbye.", "en-US", "male", 0)
                await call.hangup("hangup")
                await call.wait_for(events=["ended"], timeout=10)


        Ivr(project="p", token="t", url="ws://127.0.0.1:1", request_timeout=5.0)
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_mypy_types_connect_dial_and_ask_through_to_the_peer_call(tmp_path):
    """connect's result names the peer as a Call, dial's the call, ask's the tries; reveal_type
    shows no Any on the way."""
    result = run_mypy(
        tmp_path,
        """\
        from relaykit import Call, Client


        async def transfer(call: Call, client: Client) -> None:
            result = await call.connect(
                [{"to_number": "+15551110000"}, [{"to_number": "+1"}, {"to_number": "+2"}]],
                [{"type": "ringtone", "name": "us"}],
            )
            reveal_type(result.call)
            action = await call.connect_async([{"to_number": "+15551110000"}])
            reveal_type(action.result)
            reveal_type((await call.disconnect()).successful)
            dialled = await client.calling.dial(from_number="+1", to_number="+2")
            reveal_type(dialled.call)
            pin = await call.ask("digits", "PIN?", min_digits=4, valid=str.isdigit, tries=3)
            reveal_type(pin)
            reveal_type(pin.attempts)
        """,
    )
    revealed = [  # mypy versions differ on printing builtins. before builtin names
        t.replace("builtins.", "") for t in re.findall(r'Revealed type is "([^"]+)"', result.stdout)
    ]
    assert revealed == [
        "relaykit.client.call.Call | None",
        "relaykit.client.results.ConnectResult[relaykit.client.call.Call]",
        "bool",
        "relaykit.client.call.Call",
        "relaykit.client.results.AskResult",
        "list[relaykit.client.results.PromptResult]",
    ], result.stdout
    assert ": error:" not in result.stdout, result.stdout


def test_importing_the_sdk_loads_no_numpy_and_no_server():
    """``import relaykit.client`` (and ``import relaykit``) stays light: no numpy, no media."""
    code = (
        "import json, sys, relaykit.client, relaykit; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'soxr', 'soundfile', 'pocketsphinx', 'matplotlib') "
        "or m.startswith(('relaykit.server', 'relaykit.media', 'relaykit.testing')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == []


def test_the_server_still_loads_on_first_use_from_the_package():
    """``relaykit.RelayServer`` and ``from relaykit import VirtualCaller`` still work."""
    code = (
        "import relaykit; from relaykit import VirtualCaller; "
        "print(relaykit.RelayServer.__module__, VirtualCaller.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["relaykit.server.app", "relaykit.testing.caller"]


# -- the signatures themselves ---------------------------------------------------------------------
def _keywords(method: str) -> dict[str, inspect.Parameter]:
    params = inspect.signature(getattr(Call, method)).parameters
    return {n: p for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_the_prompt_options_are_every_v2_option_and_each_admits_none():
    """PromptOptions declares every prompt kwarg relaykit accepts (the v2 media options
    included), each optional and None-able."""
    assert PromptOptions.__optional_keys__ == PROMPT_KWARGS | IGNORED_KWARGS
    assert not PromptOptions.__required_keys__
    for name, hint in get_type_hints(PromptOptions).items():
        assert type(None) in get_args(hint), name


@pytest.mark.parametrize("method", [*PROMPT_METHODS, "ask"])
def test_each_prompt_method_takes_every_v2_option_by_name_and_its_async_form_the_same(method):
    """Every prompt method, blocking and async alike, takes the prompt options as
    ``**options: Unpack[PromptOptions]``; none of them is a parameter of its own."""
    forms = [method] if method == "ask" else [method, f"{method}_async"]
    for name in forms:
        function = getattr(Call, name)
        assert not set(_keywords(name)) & PromptOptions.__optional_keys__, name
        (var_keyword,) = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.VAR_KEYWORD
        ]
        assert get_type_hints(function)[var_keyword.name] == Unpack[PromptOptions], name
    if method != "ask":
        assert _keywords(method) == _keywords(f"{method}_async")


@pytest.mark.parametrize(
    ("methods", "options", "keywords"),
    [
        (["record", "record_async"], RecordOptions, set()),
        (["detect", "detect_async"], DetectOptions, {"wait_for_beep"}),
        (["amd", "amd_async", "detect_machine"], MachineDetectOptions, {"wait_for_beep"}),
        (["detect_human"], MachineDetectOptions, set()),
    ],
)
def test_record_and_detect_methods_take_their_options_declared_once(methods, options, keywords):
    """record's and the detectors' options are typed keys, each None-able, passed on as
    ``**options: Unpack[...]``; only ``wait_for_beep`` stays a parameter of its own."""
    assert not options.__required_keys__
    for name, hint in get_type_hints(options).items():
        assert type(None) in get_args(hint), name
    for method in methods:
        function = getattr(Call, method)
        assert set(_keywords(method)) == keywords, method
        (var_keyword,) = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.VAR_KEYWORD
        ]
        assert get_type_hints(function)[var_keyword.name] == Unpack[options], method


@pytest.mark.parametrize(
    ("method", "positional"),
    [
        ("prompt", ["prompt_type", "media_list"]),
        ("prompt_audio", ["prompt_type", "url"]),
        ("prompt_tts", ["prompt_type", "text"]),
        ("prompt_ringtone", ["prompt_type", "name"]),
        ("play", ["media_list", "volume"]),
        ("play_audio", ["url", "volume"]),
        ("play_tts", ["text", "language", "gender", "volume"]),
        ("play_silence", ["duration"]),
        ("play_ringtone", ["name", "duration", "volume"]),
        ("hangup", ["reason"]),
        ("answer", []),
    ],
)
def test_positional_parameters_are_the_v2_sdks_in_its_order(method, positional):
    """What signalwire 2.1.1 takes positionally (or by the same name) still can be."""
    for name in (method, f"{method}_async"):
        if not hasattr(Call, name):
            continue
        params = list(inspect.signature(getattr(Call, name)).parameters.values())[1:]
        assert [
            p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ] == positional


def test_literal_types_match_what_the_protocol_accepts():
    """The Literal option types list exactly the values the wire format takes."""
    assert get_args(PromptType) == PROMPT_TYPES
    assert get_args(EndReason) == calling.END_REASONS
    assert set(get_args(Gender)) == {"male", "female"}
    assert get_args(CallState)[-1] == "ended" and "answered" in get_args(CallState)
