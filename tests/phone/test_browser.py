"""The phone in a real browser: Debian's chromium, headless, driven by Playwright, its fake
microphone speaking a generated WAV, against the real server and IVRs written with the SDK.

Audio is compared by segment (frequency, level, correlation), never sample for sample: the
page plays through its own audio clock.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from pathlib import Path

import numpy as np
import pytest

from relaykit.calls import MediaEnded, MediaStarted
from relaykit.media.dtmf import generate_dtmf
from relaykit.media.tts import EspeakTts
from tests.helpers import outcome
from tests.phone.audio import (
    RATE,
    dominant_frequency,
    envelope,
    find,
    level_dbfs,
    read_wav,
    silence,
    tone,
    write_wav,
)
from tests.phone.browser import TIMEOUT_MS, browser, chromium, open_phone, page_url
from tests.phone.conftest import PROJECT_A, PROJECT_B, TOKEN_A, TOKEN_B

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("needs_chromium")]

SCREENSHOT_ENV = "RELAYKIT_PHONE_SCREENSHOT"  # also save the README's picture there


@pytest.fixture
def needs_chromium() -> None:
    chromium()


@pytest.fixture
def quiet_microphone(tmp_path: Path) -> Path:
    """Silence: without a file chromium's fake microphone beeps."""
    return write_wav(tmp_path / "quiet.wav", silence(1))


def _expect():
    from playwright.async_api import expect

    return expect


def _between(low: int, high: int) -> re.Pattern[str]:
    """A pattern matching the integers low..high (the meter's frequency attribute)."""
    return re.compile("^(" + "|".join(str(n) for n in range(low, high + 1)) + ")$")


def _level_near(level: float, within: float = 1.0) -> re.Pattern[str]:
    """A pattern for a dBFS level of one decimal within ``within`` dB of ``level``."""
    steps = range(round((level - within) * 10), round((level + within) * 10) + 1)
    return re.compile("^(" + "|".join(f"{s / 10:.1f}" for s in steps) + ")$")


def _media_times(call, kind: str) -> list[tuple[float, float]]:
    starts = [e.at for e in call.log if isinstance(e, MediaStarted) and e.media == kind]
    ends = [e.at for e in call.log if isinstance(e, MediaEnded) and e.media == kind]
    return list(zip(starts, ends, strict=False))  # the ones that have ended


async def _played_audio(page) -> np.ndarray:
    """What the page played since its call began (int16, 16 kHz)."""
    data = await page.evaluate("window.relaykitPhone.playedAudio()")
    return np.frombuffer(base64.b64decode(data), dtype="<i2")


async def test_click_to_call_plays_the_ivr_in_the_page(server, run_ivr, tmp_path, quiet_microphone):
    """Call from the page: its meter reports each tone the IVR plays (frequency and level),
    and what the page played matches the server's recording of the IVR, segment by segment."""
    tones = np.concatenate([tone(440, 1.5, -20), tone(1000, 1.5, -30)])
    wav = write_wav(tmp_path / "tones.wav", tones)
    release = asyncio.Event()

    async def ivr(call):
        await call.answer()
        await call.play_audio(str(wav))
        await call.play_tts("Welcome to the phone test.")
        await release.wait()
        await call.hangup()

    outcomes = await run_ivr(ivr)
    expect = _expect()
    async with browser(quiet_microphone) as chromium_:
        page = await open_phone(chromium_, page_url(server), PROJECT_A, TOKEN_A)
        await page.click("#call")
        await expect(page.locator("#line-state")).to_have_text(re.compile("^answered"))
        meter = page.locator("#meter")
        await expect(meter).to_have_attribute("data-frequency-hz", _between(435, 445))
        await expect(meter).to_have_attribute("data-level-dbfs", _level_near(-20))
        await expect(meter).to_have_attribute("data-frequency-hz", _between(990, 1010))
        await expect(meter).to_have_attribute("data-level-dbfs", _level_near(-30))
        await expect(page.locator("#events")).to_contain_text(
            "plays tts 'Welcome to the phone test.'"
        )
        call = server.phone.directory.calls(PROJECT_A)[-1].call
        while not _media_times(call, "tts"):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the page's jitter buffer plays the last frames
        played = await _played_audio(page)
        release.set()
        await outcome(outcomes)
        assert page.errors == []

    ivr_audio = call.media.recording()[:, 1]
    ((tone_start, _),) = _media_times(call, "audio")
    ((tts_start, tts_end),) = _media_times(call, "tts")

    def part(signal: np.ndarray, start: float, end: float) -> np.ndarray:
        return signal[max(0, round(start * RATE)) : round(end * RATE)]

    # the speech is found in what the page played, and sets the page's delay
    speech = part(ivr_audio, tts_start, min(tts_end, tts_start + 1.0))
    offset, score = find(speech, played)
    assert score > 0.9
    assert level_dbfs(played[offset : offset + len(speech)]) == pytest.approx(
        level_dbfs(speech), abs=1.0
    )
    delay = offset / RATE - tts_start
    assert 0 <= delay < 1.0
    # each tone is where it should be (give or take the page's buffering), at its frequency
    # and level
    for start in (tone_start + 0.5, tone_start + 2.0):
        server_part = part(ivr_audio, start, start + 0.5)
        window = part(played, start + delay - 0.25, start + delay + 0.75)
        found, score = find(server_part, window)
        page_part = window[found : found + len(server_part)]
        assert score > 0.9
        assert level_dbfs(page_part) == pytest.approx(level_dbfs(server_part), abs=1.0)
        assert dominant_frequency(page_part) == pytest.approx(
            dominant_frequency(server_part), rel=0.01
        )


async def test_dialpad_keys_reach_the_ivr_as_a_pin(server, run_ivr, tmp_path, quiet_microphone):
    """Keys pressed on the page's dialpad are DTMF tones the IVR's detector collects; the
    timeline shows the result as it happens; after the call its WAV and timeline download."""

    release = asyncio.Event()
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(call):
        await call.answer()
        result = await call.prompt_tts(
            "digits",
            "Please enter your PIN, then press pound.",
            digits_max=8,
            digits_terminators="#",
        )
        results.put_nowait(result)
        await call.play_tts(f"You entered {' '.join(result.result or '')}. Thank you for calling.")
        await release.wait()
        await call.hangup()

    outcomes = await run_ivr(ivr)
    expect = _expect()
    async with browser(quiet_microphone) as chromium_:
        page = await open_phone(chromium_, page_url(server), PROJECT_A, TOKEN_A)
        await page.click("#call")
        await expect(page.locator("#line-state")).to_have_text(re.compile("^answered"))
        events = page.locator("#events")
        await expect(events).to_contain_text("plays tts 'Please enter your PIN, then press pound.'")
        for key in "427#":
            await page.click(f"#dialpad button[data-key='{key}']")
        result = await outcome(results)
        assert (result.result, result.terminator, result.reason) == ("427", "#", "terminator")
        ended = page.locator("#events li[data-kind='prompt.ended']")
        await expect(ended).to_have_text(
            re.compile(
                r"ivr\s*prompt ends: digit \{'digits': '427', 'terminator': '#'\} "
                r"\(reason terminator\)"
            )
        )
        await expect(ended).to_have_class("result-good")
        for key in "427#":
            await expect(events).to_contain_text(f"detects key {key}")
        await expect(events).to_contain_text(
            "plays tts 'You entered 4 2 7. Thank you for calling.'"
        )
        await expect(page.locator("#pressed")).to_have_text("427#")
        at = [
            float(a)
            for a in await events.locator("li").evaluate_all("rows => rows.map(r => r.dataset.at)")
        ]
        assert at == sorted(at)  # in call-time order
        await asyncio.sleep(0.8)  # the picture shows the meter mid-sentence
        shot = await page.screenshot(path=str(tmp_path / "phone.png"))
        if os.environ.get(SCREENSHOT_ENV):
            Path(os.environ[SCREENSHOT_ENV]).write_bytes(shot)
        release.set()
        await outcome(outcomes)

        await expect(page.locator("#line-state")).to_have_text("ended (hangup)")
        await expect(page.locator("#downloads")).to_be_visible()
        async with page.expect_download() as download_info:
            await page.click("#download-wav")
        download = await download_info.value
        saved = tmp_path / "call.wav"
        await download.save_as(saved)
        await page.click("#download-png")
        picture = page.locator("#timeline-picture")
        await expect(picture).to_be_visible()
        width = await page.evaluate("document.getElementById('timeline-picture').naturalWidth")
        assert width > 500
        assert page.errors == []

    samples, rate, channels = read_wav(saved)
    assert (rate, channels) == (16000, 2)
    call = server.phone.directory.calls(PROJECT_A)[-1].call
    assert np.array_equal(samples, call.media.recording())
    for key in "427#":  # each key is a tone in the caller's channel
        _, score = find(generate_dtmf(key, tone_ms=100, gap_ms=0), samples[:, 0])
        assert score > 0.99, key


async def test_a_spoken_word_from_the_microphone_is_recognised(server, run_ivr, tmp_path):
    """The fake microphone says "sales" after a pause; the IVR's speech prompt recognises it
    and the page's timeline shows the result."""
    word = EspeakTts().synthesize("sales")
    microphone = write_wav(
        tmp_path / "sales.wav", np.concatenate([silence(4.0), word, silence(3.0)])
    )

    async def ivr(call):
        await call.answer()
        result = await call.prompt_tts(
            "speech",
            "Say sales or support.",
            speech_hints=["sales", "support"],
            initial_timeout=10,
        )
        await call.hangup()
        return result

    outcomes = await run_ivr(ivr)
    expect = _expect()
    async with browser(microphone) as chromium_:
        page = await open_phone(chromium_, page_url(server), PROJECT_A, TOKEN_A)
        await page.click("#call")
        await expect(page.locator("#mic-status")).to_have_text("Microphone: on")
        result = await outcome(outcomes)
        assert (result.prompt_type, result.result, result.reason) == (
            "speech",
            "sales",
            "end_silence",
        )
        events = page.locator("#events")
        await expect(events).to_contain_text(re.compile(r"hears \d\.\ds of speech \(end_silence\)"))
        await expect(page.locator("#events li[data-kind='prompt.ended']")).to_contain_text(
            "prompt ends: speech {'text': 'sales'"
        )
        assert page.errors == []
    # the word reached the call through the page: it is in the caller's channel
    call = server.phone.directory.calls(PROJECT_A)[-1].call
    caller = call.media.recording()[:, 0]
    offset, score = find(word, caller)
    heard = caller[offset : offset + len(word)]
    assert score > 0.5  # the browser's echo canceller filters the microphone
    assert level_dbfs(heard) == pytest.approx(level_dbfs(word), abs=2.0)
    assert np.corrcoef(envelope(word), envelope(heard))[0, 1] > 0.95


async def test_each_page_sees_only_its_projects_calls(server, run_ivr, quiet_microphone):
    """Logged in to project A, the page lists A's calls, live, and nothing of B's; B's page
    likewise. The token stays out of the URL (in the tab's session storage), and a reload
    logs in again from there; a wrong token is refused on the login form."""

    async def answer(call):
        await call.answer()
        await call.wait_for_ended()

    for project in (PROJECT_A, PROJECT_B):
        await run_ivr(answer, project=project)
    expect = _expect()
    url = page_url(server)
    async with browser(quiet_microphone) as chromium_:
        refused = await open_phone(chromium_, url, PROJECT_A, TOKEN_B, expect_login=False)
        await expect(refused.locator("#login-error")).to_have_text("unknown project or wrong token")
        await expect(refused.locator("#main")).to_be_hidden()

        page_a = await open_phone(chromium_, url, PROJECT_A, TOKEN_A)
        page_b = await open_phone(chromium_, url, PROJECT_B, TOKEN_B)
        call_a = await server.dial_in("office", project=PROJECT_A)
        call_b = await server.dial_in("office", project=PROJECT_B)
        rows_a, rows_b = page_a.locator("#call-list tr"), page_b.locator("#call-list tr")
        await expect(rows_a).to_have_count(1)
        await expect(rows_b).to_have_count(1)
        await expect(rows_a).to_have_attribute("data-call-id", call_a.call_id)
        await expect(rows_b).to_have_attribute("data-call-id", call_b.call_id)
        await expect(rows_a).to_contain_text("answered")
        await rows_a.click()  # follow A's call
        await expect(page_a.locator("#events")).to_contain_text("offered to context 'office'")
        await call_a.hangup()
        await expect(rows_a).to_contain_text("ended (hangup)")
        await expect(page_a.locator("#events")).to_contain_text("ended (hangup)")
        assert call_b.call_id not in await page_a.content()
        assert call_a.call_id not in await page_b.content()

        assert TOKEN_A not in page_a.url
        stored = await page_a.evaluate("sessionStorage.getItem('relaykit.phone')")
        assert TOKEN_A in stored
        await page_a.reload()
        await expect(page_a.locator("#main")).to_be_visible()
        await expect(page_a.locator("#project-name")).to_have_text(PROJECT_A)
        await expect(rows_a).to_have_count(1)
        await call_b.hangup()


async def test_a_non_secure_origin_says_why_the_microphone_is_off(server, run_ivr, tmp_path):
    """Opened from a non-local http address the page explains that browsers keep the
    microphone from non-secure origins and how to open it from localhost instead; calls,
    keys and the IVR's audio still work (played without an AudioWorklet)."""
    wav = write_wav(tmp_path / "tone.wav", tone(440, 3.0, -20))
    release = asyncio.Event()

    async def ivr(call):
        await call.answer()
        await call.play_audio(str(wav))
        await release.wait()
        await call.hangup()

    outcomes = await run_ivr(ivr)
    expect = _expect()
    host = "phone.test"  # resolved to 127.0.0.1 by the browser only
    microphone = write_wav(tmp_path / "quiet.wav", silence(1))
    async with browser(microphone, f"--host-resolver-rules=MAP {host} 127.0.0.1") as chromium_:
        page = await open_phone(chromium_, page_url(server, host), PROJECT_A, TOKEN_A)
        notice = page.locator("#notice")
        await expect(notice).to_be_visible()
        await expect(notice).to_contain_text(f"http://{host}:{server.port} is not a secure origin")
        await expect(notice).to_contain_text(f"http://localhost:{server.port}/phone")
        await page.click("#call")
        await expect(page.locator("#mic-status")).to_contain_text("not a secure origin")
        await expect(page.locator("#line-state")).to_have_text(re.compile("^answered"))
        await expect(page.locator("#meter")).to_have_attribute(
            "data-frequency-hz", _between(435, 445), timeout=TIMEOUT_MS
        )
        release.set()
        await outcome(outcomes)
        assert page.errors == []


async def test_the_microphone_worklet_resamples_a_48_khz_context(server, quiet_microphone):
    """Where the microphone runs at another rate, the page's worklet makes 16 kHz frames:
    a 1 kHz tone keeps its frequency and level, and a 12 kHz tone (which would fold over to
    4 kHz) is filtered out."""
    async with browser(quiet_microphone) as chromium_:
        page = await chromium_.new_page()
        await page.goto(page_url(server))
        samples = await page.evaluate(
            """async () => {
              const ctx = new AudioContext({ sampleRate: 48000 });
              await ctx.audioWorklet.addModule("/phone/audio-worklet.js");
              const mic = new AudioWorkletNode(ctx, "relaykit-microphone");
              const frames = [];
              mic.port.onmessage = (event) => frames.push(...new Int16Array(event.data));
              const mute = ctx.createGain();
              mute.gain.value = 0;
              mic.connect(mute).connect(ctx.destination);
              for (const frequency of [1000, 12000]) {
                const osc = ctx.createOscillator();
                const gain = ctx.createGain();
                osc.frequency.value = frequency;
                gain.gain.value = 0.25;
                osc.connect(gain).connect(mic);
                osc.start();
              }
              await ctx.resume();
              while (frames.length < 16000) await new Promise((r) => setTimeout(r, 50));
              await ctx.close();
              return frames.slice(3200, 16000);
            }"""
        )
    pcm = np.array(samples, dtype=np.int16)
    assert dominant_frequency(pcm) == pytest.approx(1000, rel=0.005)
    assert level_dbfs(pcm) == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=0.5)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    bin_hz = RATE / len(pcm)
    alias = spectrum[round(3900 / bin_hz) : round(4100 / bin_hz)].max()
    assert 20 * np.log10(alias / spectrum.max()) < -30
