"""The pytest plugin, run inside pytest (pytester): fixtures, failures, options, artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTING_GUIDE = Path(__file__).parents[2] / "docs" / "guides" / "testing.md"
PIN_IVR = Path(__file__).parents[2] / "examples" / "pin_ivr" / "pin_ivr.py"
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def guide_example() -> str:
    """The complete test file of the testing guide's "A first test" (its first Python block;
    the README's pytest section before the docs site)."""
    section = TESTING_GUIDE.read_text().split("## A first test", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the guide's first section has no python example"
    return blocks[0]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A fresh pytest project with the PIN IVR beside its tests."""
    pytester.makeini(INI)
    pytester.makepyfile(pin_ivr=PIN_IVR.read_text())
    return pytester


def test_the_guide_example_passes_as_copied(pytester):
    """The testing guide's example, pasted into a project with no pytest configuration,
    passes."""
    pytester.makepyfile(test_readme=guide_example())
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*caller  presses 427#*", "*ivr  detects key 4*"])


def test_the_guide_example_passes_on_the_fast_clock(project):
    """The same example passes with --relaykit-fast, and the header says which clock ran."""
    project.makepyfile(test_readme=guide_example())
    result = project.runpytest("--relaykit-fast")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["relaykit: loop clock fast-forwarding (looptime)*"])


def test_a_failing_expect_prompt_lists_what_was_heard_with_times(project):
    """A prompt that never comes fails the test with what the IVR played instead."""
    project.makepyfile(
        test_wrong="""
        import pytest
        from pin_ivr import PinIvr

        @pytest.mark.asyncio
        async def test_balance(relay_server, relay_ivr):
            await relay_ivr(PinIvr)
            call = await relay_server.dial_in(context="office")
            await call.expect_prompt(contains="your balance", timeout=3)
        """
    )
    result = project.runpytest("--relaykit-fast")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ExpectationError: expect_prompt(contains='your balance'): nothing matching was "
            "played in 3 s of call time (0.00 s to 3.00 s)",
            "*The IVR played:",
            "*0.00 –   2.7? s  tts      'Please enter your PIN, then press pound.'",
            "*Call state: answered",
        ]
    )
    assert "caller.py" not in result.stdout.str()  # the failure points at the test's line


def test_a_failing_test_leaves_wav_json_and_timeline_in_the_artifacts_folder(project):
    """--relaykit-artifacts DIR gets each call of a failing test as WAV, JSON and PNG."""
    project.makepyfile(
        test_artifacts="""
        import pytest
        from pin_ivr import PinIvr

        @pytest.mark.asyncio
        async def test_fails(relay_server, relay_ivr):
            await relay_ivr(PinIvr)
            call = await relay_server.dial_in(context="office")
            await call.expect_prompt(contains="PIN")
            await call.press("999#")
            await call.expect_prompt(contains="PIN is correct")

        @pytest.mark.asyncio
        async def test_passes(relay_server, relay_ivr):
            await relay_ivr(PinIvr)
            call = await relay_server.dial_in(context="office")
            await call.expect_prompt(contains="PIN")
        """
    )
    result = project.runpytest("--relaykit-fast", "--relaykit-artifacts", "calls")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*relaykit: calls of failing tests*", "*call-1-office.png"])
    folders = list((project.path / "calls").iterdir())
    assert [f.name for f in folders] == ["test_artifacts.py_test_fails"]
    names = sorted(p.name for p in folders[0].iterdir())
    assert names == ["call-1-office.json", "call-1-office.png", "call-1-office.wav"]


def test_a_failing_test_s_answered_callees_are_in_the_artifacts_too(pytester):
    """A callee that answered an IVR's connect gets its own WAV, JSON and timeline."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_transfer="""
        import pytest
        from relaykit import Consumer

        class Transfer(Consumer):
            contexts = ["office"]

            async def on_incoming_call(self, call):
                await call.answer()
                await call.connect([{"to_number": "+15551110000"}])

        @pytest.mark.asyncio
        async def test_fails(relay_server, relay_ivr):
            callees = relay_server.callees({"+15551110000": "answer"})
            await relay_ivr(Transfer)
            caller = await relay_server.dial_in(context="office")
            agent = await callees.expect_answered()
            await caller.say("Hello")
            await agent.expect_prompt(contains="welcome", timeout=1)
        """
    )
    result = pytester.runpytest("--relaykit-fast", "--relaykit-artifacts", "calls")
    result.assert_outcomes(failed=1)
    (folder,) = (pytester.path / "calls").iterdir()
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "call-1-office.json",
        "call-1-office.png",
        "call-1-office.wav",
        "callee-1.json",
        "callee-1.png",
        "callee-1.wav",
    ]


def test_options_are_also_ini_keys_and_the_marker_overrides_them(project):
    """relaykit_fast in the ini turns the fast clock on; the marker turns it off per test."""
    project.makeini(INI + "relaykit_fast = true\nrelaykit_artifacts = out\n")
    project.makepyfile(
        test_clock="""
        import asyncio
        import pytest

        def fast():
            return getattr(asyncio.get_running_loop(), "looptime_on", False)

        @pytest.mark.asyncio
        async def test_fast_by_ini(relay_server):
            assert fast()

        @pytest.mark.asyncio
        @pytest.mark.relaykit(fast=False)
        async def test_real_by_marker(relay_server):
            assert not fast()
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["relaykit: loop clock fast-forwarding (looptime); failing calls' recordings: out"]
    )


def test_tests_that_do_not_use_the_fixtures_keep_the_normal_clock(project):
    """The plugin is opt-in: even with --relaykit-fast, other async tests run in real time."""
    project.makepyfile(
        test_other="""
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_plain():
            assert not getattr(asyncio.get_running_loop(), "looptime_on", False)

        def test_sync():
            pass
        """
    )
    project.runpytest("--relaykit-fast").assert_outcomes(passed=2)


def test_looptimes_own_marker_and_fixture_work_beside_the_fast_mode(project):
    """A test marked for looptime still gets its clock and the looptime fixture."""
    project.makepyfile(
        test_looptime="""
        import asyncio
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.looptime
        async def test_marked(relay_server, looptime):
            before = float(looptime)
            await asyncio.sleep(100)
            assert float(looptime) - before == pytest.approx(100)
        """
    )
    project.runpytest("--relaykit-fast").assert_outcomes(passed=1)


def test_an_exception_in_the_ivr_fails_the_test_with_its_traceback(project):
    """An IVR hook that raises (the SDK only logs it) is reported when the test ends."""
    project.makepyfile(
        test_crash="""
        import pytest
        from relaykit import Consumer

        class Crashing(Consumer):
            contexts = ["office"]

            async def on_incoming_call(self, call):
                await call.answer()
                raise KeyError("no such menu")

        @pytest.mark.asyncio
        async def test_call(relay_server, relay_ivr):
            await relay_ivr(Crashing)
            call = await relay_server.dial_in(context="office")
            await call.wait_answered()
            await call.silence(0.5)
        """
    )
    result = project.runpytest("--relaykit-fast")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the IVR raised:*", "*KeyError: 'no such menu'*"])
