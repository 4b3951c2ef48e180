"""SIP benchmark: N concurrent SIPp calls, each answered by an SDK IVR running a DTMF prompt.

    python3 benchmarks/sip_bench.py --calls 100 500 1000 --hold 15

For each N, calls start at ``--rate`` per second (N/10 by default), so all N are up together
for several seconds (the ``peak`` column says how many were). A RelayServer with SIP on
loopback runs in this process, the IVR (our SDK) in its own process, and SIPp plays
``tests/sip/data/uac_bench_rtp.xml``: offer PCMA, answer, hold ``--hold`` seconds while the
prompt plays to it and it sends 7 s of G.711 A-law speech in 20 ms packets (a pcap this script
writes, :func:`write_caller_pcap`), press 4 2 7 # as RFC 2833 events, wait for the IVR's BYE.
One extra probe call, placed by this script, receives the IVR's audio on a socket with kernel
receive timestamps (SO_TIMESTAMPNS), so pacing is measured as a phone sees it.

Printed per N: SIPp successful/failed calls, prompts that returned 427, the media clock's
lateness (p50/p99/max per 20 ms tick, ticks later than one frame), server CPU (share of one
core, whole run), and the probe's packet pacing: inter-arrival deviation from 20 ms
(p50/p99/max) and the RFC 3550 interarrival jitter. "Held in real time" means every call and
prompt succeeded, fewer than 1 % of ticks were late by a whole frame, and p99 lateness stayed
under 20 ms. Needs Debian's sip-tester (SIPp).

    python3 benchmarks/sip_bench.py --hub 1000

measures the RTP hub alone, without SIPp or an IVR: 1000 legs on real loopback sockets, and
per 20 ms tick every simulated phone sends one PCMA packet, the engine ticks (the hub reads,
decodes and upsamples), every leg sends one frame back (resample, encode, send) and the phones
read it. It prints this process's CPU time per tick (phones included), which depends far less
on what else the machine runs than the lateness of a real-time run does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks._common import SystemCpu, cpu_seconds  # noqa: E402
from relaykit import RelayServer  # noqa: E402

SCENARIO = ROOT / "tests" / "sip" / "data" / "uac_bench_rtp.xml"
PROJECT, TOKEN = "bench", "bench-token"
IVR_NUMBER, PROBE_NUMBER = "+15559870000", "+15550000000"
LOOPBACK = "127.0.0.1"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python has no constant for it


CALLER_PCAP = "caller_pcma_20ms.pcap"  # the scenario plays it from SIPp's working directory
CALLER_TEXT = "Hello, I would like to check the balance of my account, please. " * 2


def write_caller_pcap(path: Path, seconds: float = 7.0) -> None:
    """A pcap of RTP packets (PCMA, 20 ms each, 50 per second) carrying espeak-ng speech, for
    SIPp's play_pcap_audio (which takes the payloads and their timing)."""
    import numpy as np

    from relaykit.media.tts import EspeakTts
    from relaykit.sip.g711 import alaw_encode
    from relaykit.sip.resample import HISTORY, downsample2

    speech = EspeakTts().synthesize(CALLER_TEXT)
    speech = np.resize(speech, round(seconds * 16000) // 320 * 320)
    narrow, _ = downsample2(speech.reshape(1, -1), np.zeros((1, HISTORY), dtype=np.float32))
    codes = alaw_encode(narrow.reshape(-1)).tobytes()
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n in range(len(codes) // 160):
        rtp = struct.pack("!BBHII", 0x80, 8, n & 0xFFFF, n * 160, 0x1234ABCD)
        rtp += codes[n * 160 : (n + 1) * 160]
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        loopback = bytes([127, 0, 0, 1])
        header = (0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0, loopback, loopback)
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", *header))
        words = struct.unpack("!10H", ip)
        total = sum(words)
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        ip[10:12] = struct.pack("!H", ~total & 0xFFFF)
        frame = b"\x00" * 12 + b"\x08\x00" + bytes(ip) + udp  # Ethernet: IPv4
        sec, usec = divmod(n * 20_000, 1_000_000)
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


# -- the IVR, in its own process ---------------------------------------------------------------
def ivr_process(url: str, hold: float, results: mp.Queue, ready: mp.Event) -> None:
    from relaykit import Consumer

    class Ivr(Consumer):
        contexts = ("office", "probe")

        async def ready(self) -> None:
            ready.set()

        async def on_incoming_call(self, call):
            with contextlib.suppress(Exception):  # the server stops under the probe call
                await self.handle(call)

        async def handle(self, call):
            await call.answer()
            if call.context == "probe":
                await call.play_silence(hold + 20)
                await call.hangup()
                return
            result = await call.prompt_tts(
                "digits",
                "Please enter your 3 digit PIN, then press pound",
                digits_max=8,
                digits_terminators="#",
                initial_timeout=hold + 30,
                digits_timeout=5,
            )
            results.put(result.result)
            await call.hangup()

    Ivr(project=PROJECT, token=TOKEN, url=url).run()


def cpu_per_call_second(timeline: list[tuple[float, int, int, float]]) -> float:
    """The server's CPU seconds per second of a call being up, from a run's timeline of
    (seconds, calls up, late ticks, CPU seconds) samples: set-up and tear-down included."""
    call_seconds = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(timeline))
    if len(timeline) < 2 or call_seconds <= 0:
        return float("nan")
    return (timeline[-1][3] - timeline[0][3]) / call_seconds


# -- the probe call ----------------------------------------------------------------------------
class Probe:
    """A phone that calls in and timestamps every RTP packet in the kernel."""

    def __init__(self, sip_port: int) -> None:
        self.sip_port = sip_port
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((LOOPBACK, 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((LOOPBACK, 0))
        self.rtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.rtp.settimeout(0.5)
        self.arrivals: list[tuple[int, int, float]] = []  # (seq, rtp ts, arrival s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)

    def call(self) -> None:
        me = self.sip.getsockname()[1]
        rtp_port = self.rtp.getsockname()[1]
        sdp = (
            f"v=0\r\no=- 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0\r\n"
        )
        head = (
            f"Via: SIP/2.0/UDP {LOOPBACK}:{me};branch=z9hG4bK-probe{{n}}\r\n"
            f"From: <sip:probe@{LOOPBACK}>;tag=probe\r\n"
            f"To: <sip:{PROBE_NUMBER}@{LOOPBACK}>{{tag}}\r\n"
            "Call-ID: probe-call\r\n"
        )
        invite = (
            f"INVITE sip:{PROBE_NUMBER}@{LOOPBACK}:{self.sip_port} SIP/2.0\r\n"
            + head.format(n=1, tag="")
            + f"CSeq: 1 INVITE\r\nContact: <sip:probe@{LOOPBACK}:{me}>\r\n"
            + f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        self.sip.sendto(invite.encode(), (LOOPBACK, self.sip_port))
        self.sip.settimeout(30)
        while True:
            data = self.sip.recv(65535).decode()
            if data.startswith("SIP/2.0 200"):
                break
        to_tag = re.search(r"^To:.*?;tag=([^;\r\n]+)", data, re.M | re.I)
        ack = (
            f"ACK sip:{PROBE_NUMBER}@{LOOPBACK}:{self.sip_port} SIP/2.0\r\n"
            + head.format(n=2, tag=f";tag={to_tag.group(1) if to_tag else ''}")
            + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        self.sip.sendto(ack.encode(), (LOOPBACK, self.sip_port))
        # one packet from our side, so symmetric RTP sends to this socket
        m = re.search(r"m=audio (\d+)", data)
        if m:
            header = struct.pack("!BBHII", 0x80, 0, 1, 160, 1234)
            self.rtp.sendto(header + b"\xff" * 160, (LOOPBACK, int(m.group(1))))
        self.thread.start()

    def _receive(self) -> None:
        size = socket.CMSG_SPACE(16)
        while not self.stop.is_set():
            try:
                data, ancillary, _, _ = self.rtp.recvmsg(2048, size)
            except TimeoutError:
                continue
            except OSError:
                return
            when = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    when = sec + nsec / 1e9
            if len(data) >= 12:
                seq, ts = struct.unpack("!HI", data[2:8])
                self.arrivals.append((seq, ts, when))

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(2)
        self.sip.close()
        self.rtp.close()

    def pacing(self, skip: float = 2.0) -> dict[str, float]:
        """Deviation of inter-arrival times from 20 ms, and RFC 3550 jitter, in ms."""
        packets = self.arrivals
        if len(packets) < 10:
            return {}
        start = packets[0][2] + skip
        devs: list[float] = []
        jitter = 0.0
        prev = None
        for seq, ts, when in packets:
            if when < start:
                prev = (seq, ts, when)
                continue
            if prev is not None and (seq - prev[0]) & 0xFFFF == 1:
                gap = when - prev[2]
                devs.append(abs(gap - 0.020) * 1000)
                d = abs((when - prev[2]) - ((ts - prev[1]) & 0xFFFFFFFF) / 8000)
                jitter += (d - jitter) / 16
            prev = (seq, ts, when)
        return {
            "packets": len(devs),
            "p50": percentile(devs, 50),
            "p99": percentile(devs, 99),
            "max": max(devs) if devs else float("nan"),
            "rfc3550_ms": jitter * 1000,
        }


# -- the RTP hub alone -------------------------------------------------------------------------
def _timed(obj: object, name: str, totals: dict[str, float], label: str) -> None:
    """Wrap method ``name`` of ``obj`` to add its CPU time to ``totals[label]``."""
    method = getattr(obj, name)

    def timed(*args: object, **kwargs: object) -> object:
        start = time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + time.process_time() - start

    setattr(obj, name, timed)


async def hub_bench(n: int, ticks: int = 150) -> dict[str, float]:
    """CPU seconds per tick (median, p90) of the hub with ``n`` legs and their phones, and
    its split: the hub's steps (timers around its private methods), the engine's own tick,
    the phones."""
    import numpy as np

    from relaykit.media.engine import MediaEngine
    from relaykit.sip.g711 import ALAW
    from relaykit.sip.leg import RtpHub, RtpLeg

    engine = MediaEngine()
    hub = RtpHub(engine)
    await hub.start()
    split: dict[str, float] = {}
    _timed(hub, "_read", split, "read")
    _timed(hub, "_flush_in", split, "decode, upsample, push")
    _timed(engine, "push_frames", split, "  of which push_frames")
    _timed(hub, "_flush_out", split, "out")
    phones: list[socket.socket] = []
    legs: list[RtpLeg] = []
    try:
        for i in range(n):
            media = engine.add_call(f"hub-{i}", record=False)
            leg = await RtpLeg.open(hub, LOOPBACK)
            phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            phone.bind((LOOPBACK, 0))
            phone.setblocking(False)
            leg.start(media, ALAW, 101, phone.getsockname())
            phones.append(phone)
            legs.append(leg)
        rng = np.random.default_rng(0)
        payload = rng.integers(0, 256, 160, dtype=np.uint8).tobytes()
        frame = (rng.standard_normal(320) * 3000).astype(np.int16)
        cpu: list[float] = []
        for t in range(ticks):
            if t == 10:
                split.clear()
            start = time.process_time()
            for k, (phone, leg) in enumerate(zip(phones, legs, strict=True)):
                header = struct.pack("!BBHII", 0x80, 8, t & 0xFFFF, t * 160, k)
                phone.sendto(header + payload, (LOOPBACK, leg.port))
            sent = time.process_time()
            await asyncio.sleep(0.003)
            ticked = time.process_time()
            engine.tick()
            split["tick"] = split.get("tick", 0.0) + time.process_time() - ticked
            for leg in legs:
                hub.queue_out(leg, frame)
            await asyncio.sleep(0)  # the outbound batch goes right after the tick
            received = time.process_time()
            for phone in phones:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        phone.recv(2048)
            now = time.process_time()
            if t >= 10:
                split["phones"] = split.get("phones", 0.0) + (sent - start) + (now - received)
            cpu.append(now - start)
        heard = sum(leg.received for leg in legs)
        if heard != n * ticks:
            raise SystemExit(f"the hub heard {heard} of {n * ticks} packets")
        steady = cpu[10:]
        split["engine's own tick"] = split["tick"] - split["read"] - split["decode, upsample, push"]
        order = ["read", "decode, upsample, push", "  of which push_frames"]
        order += ["engine's own tick", "out", "phones"]
        return {
            "median": percentile(steady, 50),
            "p90": percentile(steady, 90),
            **{f"split: {k}": split[k] / len(steady) for k in order},
        }
    finally:
        for phone in phones:
            phone.close()
        await hub.stop()


# -- one run -----------------------------------------------------------------------------------
async def run_once(n: int, hold: float, rate: float) -> dict[str, object]:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp is not installed: apt-get install -y sip-tester")
    server = RelayServer(
        credentials={PROJECT: TOKEN},
        record_calls=False,
        sip=(LOOPBACK, 0),
        sip_routes={IVR_NUMBER: "office", PROBE_NUMBER: "probe"},
        max_request_rate=5000,
        max_request_burst=10000,
        hold_gc=True,  # the server owns this process, as under `relaykit serve`
    )
    await server.start()
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    ready = ctx.Event()
    ivr = ctx.Process(target=ivr_process, args=(server.url, hold, results, ready), daemon=True)
    ivr.start()
    probe = Probe(server.sip.port)
    loop = asyncio.get_running_loop()
    try:
        while not ready.is_set():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        await loop.run_in_executor(None, probe.call)
        server.lateness.clear()
        server.late_frames = 0
        peak = 0
        timeline: list[tuple[float, int, int, float]] = []  # (s, calls up, late ticks, cpu s)
        start = time.monotonic()

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, len(server.calls) - 1)  # minus the probe
                now = round(time.monotonic() - start, 1)
                if not timeline or now - timeline[-1][0] >= 1.0:
                    up = len(server.calls) - 1
                    timeline.append((now, up, server.late_frames, time.process_time()))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        cpu0, wall0 = time.process_time(), time.monotonic()
        machine = SystemCpu()
        ivr_cpu0 = cpu_seconds(ivr.pid)
        with tempfile.TemporaryDirectory() as tmp:
            write_caller_pcap(Path(tmp) / CALLER_PCAP)
            proc = await asyncio.create_subprocess_exec(
                sipp, f"{LOOPBACK}:{server.sip.port}", "-sf", str(SCENARIO),
                "-s", IVR_NUMBER, "-i", LOOPBACK, "-mi", LOOPBACK,
                "-m", str(n), "-l", str(n), "-r", str(rate), "-d", str(int(hold * 1000)),
                "-nostdin", "-timeout", f"{int(hold + n / rate + 120)}s", "-timeout_error",
                "-max_socket", str(n + 100), "-trace_stat", "-fd", "1",
                cwd=tmp, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            sipp_cpu = 0.0

            async def sipp_usage() -> None:
                nonlocal sipp_cpu
                while proc.returncode is None:
                    with contextlib.suppress(OSError):
                        sipp_cpu = cpu_seconds(proc.pid)
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(sipp_usage())
            out, _ = await proc.communicate()
            watcher.cancel()
        sampler.cancel()
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        busy = machine.cores_busy()
        ivr_cpu = cpu_seconds(ivr.pid) - ivr_cpu0
        text = out.decode(errors="replace")
        ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", text)
        failed = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", text)
        prompts = []
        with contextlib.suppress(Exception):
            while True:
                prompts.append(results.get(timeout=0.5))
        lateness = [x * 1000 for x in server.lateness]
        ticks = len(lateness)
        assert server.sip is not None
        hub = server.sip.hub
        return {
            "calls": n,
            "peak": peak,
            "sipp_ok": int(ok[-1]) if ok else -1,
            "sipp_failed": int(failed[-1]) if failed else -1,
            "prompts_427": sum(1 for p in prompts if p == "427"),
            "other_results": sorted(str(p) for p in prompts if p != "427"),
            "late_ticks": server.late_frames,
            "ticks": ticks,
            "lateness_p50": percentile(lateness, 50),
            "lateness_p99": percentile(lateness, 99),
            "lateness_max": max(lateness) if lateness else float("nan"),
            "cpu_share": cpu / wall,
            "ivr_cpu_share": ivr_cpu / wall,
            "sipp_cpu_share": sipp_cpu / wall,
            "other_cpu_share": max(0.0, busy - (cpu + ivr_cpu + sipp_cpu) / wall),
            "pacing": probe.pacing(),
            "cpu_per_call_second_ms": 1000 * cpu_per_call_second(timeline),
            "rtp_packets": hub.packets,
            "rtp_steady_share": hub.steady_packets / max(1, hub.packets),
            "timeline": timeline,
            "sipp_rc": proc.returncode,
        }
    finally:
        probe.close()
        await server.stop()
        ivr.terminate()
        ivr.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--hold", type=float, default=10.0, help="seconds each call is held")
    parser.add_argument(
        "--rate", type=float, default=None, help="new calls per second (default: N/10)"
    )
    parser.add_argument("--json", type=Path, help="also write every row's figures here")
    parser.add_argument(
        "--uvloop", action="store_true", help="run the server's event loop on uvloop"
    )
    parser.add_argument(
        "--hub", type=int, nargs="+", metavar="LEGS", help="measure the RTP hub alone"
    )
    args = parser.parse_args()
    if args.hub:
        for n in args.hub:
            cpu = asyncio.run(hub_bench(n))
            print(
                f"RTP hub, {n} legs: CPU per 20 ms tick {cpu['median'] * 1000:.2f} ms "
                f"(p90 {cpu['p90'] * 1000:.2f} ms), phones included",
                flush=True,
            )
            for key, value in cpu.items():
                if key.startswith("split: "):
                    print(f"  {key[7:]:<28} {value * 1000:6.2f} ms per tick (mean)", flush=True)
        return
    rows = []
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  hold: {args.hold:g}s")
    header = (
        f"{'calls':>5} {'peak':>5} {'sipp ok/fail':>12} {'427s':>5} {'late/ticks':>12} "
        f"{'lateness ms p50/p99/max':>24} {'cpu':>5} {'pacing dev ms p50/p99/max':>26} "
        f"{'jitter ms':>9} {'held':>5} {'sipp cpu':>8} {'other':>6}"
    )
    print(header)
    for n in args.calls:
        if args.uvloop:
            import uvloop  # not a relaykit dependency: installed for the measurement

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        r = asyncio.run(run_once(n, args.hold, args.rate or max(10.0, n / 10)))
        p = r["pacing"] or {}
        held = (
            r["sipp_ok"] == n
            and r["prompts_427"] == n
            and r["late_ticks"] < 0.01 * max(1, r["ticks"])
            and r["lateness_p99"] < 20
        )
        print(
            f"{n:>5} {r['peak']:>5} {r['sipp_ok']:>5}/{r['sipp_failed']:<6} {r['prompts_427']:>5} "
            f"{r['late_ticks']:>5}/{r['ticks']:<6} "
            f"{r['lateness_p50']:>7.2f}/{r['lateness_p99']:>6.2f}/{r['lateness_max']:>8.1f} "
            f"{r['cpu_share']:>5.0%} "
            f"{p.get('p50', float('nan')):>8.2f}/{p.get('p99', float('nan')):>6.2f}/"
            f"{p.get('max', float('nan')):>8.1f} {p.get('rfc3550_ms', float('nan')):>9.2f} "
            f"{'yes' if held else 'NO':>5} "
            f"{r['sipp_cpu_share']:>8.0%} {r['other_cpu_share']:>6.0%}",
            flush=True,
        )
        print(
            f"      server CPU per call-second {r['cpu_per_call_second_ms']:.2f} ms; "
            f"RTP packets read {r['rtp_packets']}, {r['rtp_steady_share']:.0%} on the steady path",
            flush=True,
        )
        if r["other_results"]:
            print(f"      prompts that did not return 427: {r['other_results']}", flush=True)
        rows.append({**r, "held": held, "uvloop": args.uvloop})
    if args.json:
        args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
