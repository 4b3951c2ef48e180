"""``python -m benchmarks.media_attacks [--quick]``: a hostile tenant's media attacks, repeated.

One server, two projects. Project B is the victim: an IVR (our SDK) that answers each call
with a *new* TTS prompt ("Call 3. Please enter your four digit PIN…", so speech must be
synthesised every time), reads the PIN back and hangs up; a virtual caller presses 1234#.
Project A is the attacker, with a valid token, a raw RELAY client and calls of its own:

``memory``
    8 prompts of 64 ringtones of 3600 s each, and 16 plays of distinct 5000-character texts
    (the report of issue 20: +880 MB and a 3 s freeze for the ringtones, +1.1 GB for the
    texts).
``starvation``
    64 plays whose ``audio`` URLs (on an allowed loopback network, so they are fetched) never
    answer (issue 20: the victim's new prompt took 70 s instead of 4 s).

For a baseline without attack and then for each attack, it prints the victim's PIN calls
(time from dialling to the IVR's hang-up, and from the answer to the prompt's start), the
process's peak resident memory above the baseline's, and the media clock's worst lateness.
The server, both IVRs and the callers share this one process, as in the tests. Goals (the
issue's "done when"): each victim PIN call within 2× the baseline's median, and the memory
an attack adds under 256 MB (A's budget of 64 MB of audio, the shared TTS and audio caches of
64 + 32 MB, and the allocator's slack).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

from relaykit import Call, Consumer, RelayServer
from tests.helpers import RawClient

A, B = "attacker", "victim"
CREDENTIALS = {A: "token-a", B: "token-b"}
PIN = "1234"
GOAL_RATIO = 2.0
MEMORY_GOAL_MB = 256.0
GOAL_MISSED = 3  # exit status when a goal is missed (a crash exits 1)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PinIvr(Consumer):
    contexts = ("pin",)
    calls = itertools.count(1)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        n = next(self.calls)
        result = await call.prompt_tts(
            "digits",
            f"Call {n}. Please enter your four digit PIN, then press pound.",
            digits_max=4,
            digits_terminators="#",
            digits_timeout=5,
            initial_timeout=20,
        )
        await call.play_tts(f"Call {n}: you entered {' '.join(result.result or '')}. Goodbye.")
        await call.hangup()


@dataclass
class Phase:
    name: str
    pin_calls: list[float] = field(default_factory=list)  # dial → hang-up, seconds
    prompt_starts: list[float] = field(default_factory=list)  # answer → prompt plays
    peak_rss: float = 0.0
    worst_tick_ms: float = 0.0
    notes: str = ""


async def victim_call(server: RelayServer, phase: Phase) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    caller = await server.dial_in("pin", project=B, timeout=30)
    await caller.wait_answered(timeout=60)
    answered = loop.time()
    await caller.expect_prompt(contains="please enter", timeout=120, recognize=False)
    phase.prompt_starts.append(loop.time() - answered)
    await caller.press(PIN + "#")
    await caller.expect_hangup(timeout=120)
    phase.pin_calls.append(loop.time() - start)
    if f"you entered {' '.join(PIN)}" not in " ".join(h.label.lower() for h in caller.heard):
        phase.notes += " wrong read-back!"


async def sample_memory(phase: Phase, stop: asyncio.Event) -> None:
    while not stop.is_set():
        phase.peak_rss = max(phase.peak_rss, rss_mb())
        await asyncio.sleep(0.05)


async def attacker_calls(server: RelayServer, client: RawClient, count: int) -> list[dict]:
    refs = []
    for _ in range(count):
        dial = asyncio.create_task(server.dial_in("attack", project=A, timeout=30))
        offer = await client.event("calling.call.receive")
        await dial
        ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
        await client.execute("calling.answer", ref)
        refs.append(ref)
    return refs


async def memory_attack(server: RelayServer, client: RawClient) -> str:
    refs = await attacker_calls(server, client, 8)
    ring = [{"type": "ringtone", "params": {"name": "us", "duration": 3600}}] * 64
    for n, ref in enumerate(refs):
        await client.execute(
            "calling.play_and_collect",
            {**ref, "control_id": f"ring{n}", "play": ring,
             "collect": {"digits": {"max": 1}, "initial_timeout": 3600}},
        )  # fmt: skip
    refused = 0
    for n in range(16):
        text = f"Attack {n}. " + " ".join(f"word{n}x{i}." for i in range(600))
        reply = await client.execute(
            "calling.play",
            {**refs[n % len(refs)], "control_id": f"tts{n}",
             "play": [{"type": "tts", "params": {"text": text[:5000]}}]},
        )  # fmt: skip
        refused += reply["result"]["result"]["code"] != "200"
    return f"8×64 ringtones of 3600 s, 16 texts of 5000 chars ({refused} refused)"


async def starvation_attack(server: RelayServer, client: RawClient, port: int) -> str:
    refs = await attacker_calls(server, client, 2)
    for n in range(64):
        url = f"http://127.0.0.1:{port}/never-{n}.wav"
        await client.execute(
            "calling.play",
            {**refs[n % 2], "control_id": f"url{n}",
             "play": [{"type": "audio", "params": {"url": url}}]},
        )  # fmt: skip
    return "64 plays of audio URLs that never answer"


async def run_phase(
    server: RelayServer,
    name: str,
    calls: int,
    attack: Callable[[], Awaitable[str]] | None,
) -> Phase:
    phase = Phase(name)
    first_tick = len(server.lateness)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_memory(phase, stop))
    try:
        if attack is not None:
            phase.notes = await attack()
            await asyncio.sleep(1.0)  # let the attack take hold
        for _ in range(calls):
            await victim_call(server, phase)
    finally:
        stop.set()
        await sampler
    late = server.lateness[first_tick:]
    phase.worst_tick_ms = max(late, default=0.0) * 1000
    return phase


async def main(quick: bool) -> int:
    calls = 1 if quick else 3
    silent_connections: set[asyncio.StreamWriter] = set()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_connections.add(writer)
        try:
            await reader.read()
        finally:
            silent_connections.discard(writer)
            writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    phases: list[Phase] = []
    async with RelayServer(
        credentials=CREDENTIALS,
        media_networks=["127.0.0.0/8"],
        fetch_timeout=60,
        record_calls=False,
    ) as server:
        ivr = PinIvr(project=B, token=CREDENTIALS[B], url=server.url)
        ivr_task = asyncio.create_task(ivr.serve())
        attacker = RawClient(await connect(server.url))
        await attacker.handshake(A, CREDENTIALS[A])
        await attacker.execute("signalwire.receive", {"contexts": ["attack"]})
        await asyncio.sleep(0.3)
        warm = Phase("warm-up")
        await victim_call(server, warm)  # loads espeak, the SDK paths, the engine
        baseline_rss = rss_mb()

        async def memory() -> str:
            return await memory_attack(server, attacker)

        async def starvation() -> str:
            return await starvation_attack(server, attacker, silent_port)

        for name, attack in (("baseline", None), ("starvation", starvation), ("memory", memory)):
            phases.append(await run_phase(server, name, calls, attack))
            for call in list(server.calls.values()):
                if call.project == A:
                    server.call_service.end_call(call, "hangup")
            await asyncio.sleep(0.5)
        budget = server.loader.budgets.get(A)
        a_cpu = 0.0 if budget is None else budget.cpu_spent
        await attacker.ws.close()
        await ivr.stop()
        await ivr_task
    silent.close()
    report(phases, baseline_rss, a_cpu)
    base = statistics.median(phases[0].pin_calls)
    ok = all(
        max(p.pin_calls) <= GOAL_RATIO * base and p.peak_rss - baseline_rss <= MEMORY_GOAL_MB
        for p in phases
    )
    return 0 if ok else GOAL_MISSED


def report(phases: list[Phase], baseline_rss: float, a_cpu: float) -> None:
    base = statistics.median(phases[0].pin_calls)
    print("# Media attacks: the victim project's PIN calls beside a baseline (same run)\n")
    print(
        f"cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}; "
        f"RSS before: {baseline_rss:.0f} MB"
    )
    print()
    print(
        "| phase | PIN call, s (median / max) | × baseline | prompt starts after answer, s "
        "| peak RSS above before, MB | worst media tick late, ms | attack |"
    )
    print("|---|---|---|---|---|---|---|")
    for p in phases:
        median = statistics.median(p.pin_calls)
        print(
            f"| {p.name} | {median:.2f} / {max(p.pin_calls):.2f} | {max(p.pin_calls) / base:.2f} "
            f"| {max(p.prompt_starts):.2f} | {p.peak_rss - baseline_rss:.0f} "
            f"| {p.worst_tick_ms:.0f} | {p.notes.strip()} |"
        )
    print()
    print(
        f"Goals: every PIN call within {GOAL_RATIO:g}× the baseline median; the memory an "
        f"attack adds under {MEMORY_GOAL_MB:g} MB. Attacker's synthesis/decoding CPU: "
        f"{a_cpu:.1f} s (its budget: 20 s burst + 0.5 s/s)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one victim call per phase")
    args = parser.parse_args()
    start = time.monotonic()
    code = asyncio.run(main(args.quick))
    print(f"\n({time.monotonic() - start:.0f} s)")
    raise SystemExit(code)
