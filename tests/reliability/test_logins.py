"""Logging in under attack: deadlines, caps on connections not logged in, the login throttle."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaykit import AuthenticationError, RelayServer
from relaykit.server.auth import AuthThrottle, Credentials, Logins, TryLater
from tests.helpers import WAIT, RawClient

A, B = "project-a", "project-b"
CREDENTIALS = {A: "token-a", B: "token-b"}
OTHER_ADDRESS = "127.0.0.2"  # loopback too: another client machine, as far as the server knows


async def _close_of(ws) -> tuple[int, str]:
    """Wait for the server to close ``ws`` (reading whatever comes first); its code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def _connect_frame(project: str, token: str, request_id: str = "login") -> str:
    params = {"authentication": {"project": project, "token": token}}
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "blade.connect", "params": params}
    )


# -- the policy on its own (loop time fast-forwarded: no wall-clock claims) ----------------------
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_parallel_failures_of_one_address_are_answered_one_after_another():
    """Six guesses at once are answered 1, 2, 4, 8, 8, 8 s after each other, not all by 8 s."""
    logins = Logins(Credentials(CREDENTIALS), throttle=AuthThrottle(base=1.0, maximum=8.0))
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def guess() -> float:
        visitor = logins.admit("10.0.0.1", lambda reason: None)
        with pytest.raises(AuthenticationError):
            await logins.check(visitor, B, "guess")
        return loop.time() - start

    answered = sorted(await asyncio.gather(*(guess() for _ in range(6))))
    assert answered == pytest.approx([1, 3, 7, 15, 23, 31])


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_failures_count_per_address_and_per_project_and_survive_other_projects_logins():
    """A's good login resets nothing of B's guesses; a new address guessing B waits as long."""
    logins = Logins(Credentials(CREDENTIALS), throttle=AuthThrottle(base=1.0, maximum=64.0))
    loop = asyncio.get_running_loop()

    async def attempt(address: str, project: str, token: str) -> float:
        visitor = logins.admit(address, lambda reason: None)
        began = loop.time()
        try:
            await logins.check(visitor, project, token)
        except AuthenticationError:
            pass
        finally:
            visitor.leave()
        return loop.time() - began

    waits = [await attempt("10.0.0.1", B, "guess") for _ in range(3)]
    assert waits == pytest.approx([1, 2, 4])
    assert await attempt("10.0.0.1", A, "token-a") == 0  # a success is never delayed
    assert await attempt("10.0.0.1", B, "guess") == pytest.approx(8)  # not reset by A's login
    assert await attempt("10.0.0.9", B, "guess") == pytest.approx(16)  # B's 5th failure
    assert await attempt("10.0.0.9", B, "token-b") == 0


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_attempts_beyond_the_bound_are_refused_before_the_token_is_read():
    """With two failures waiting, a third attempt is refused even with the right token."""
    logins = Logins(
        Credentials(CREDENTIALS),
        max_attempts_per_address=2,
        throttle=AuthThrottle(base=10.0, maximum=10.0),
    )
    waiting = [
        asyncio.create_task(logins.check(logins.admit("10.0.0.1", print), B, "guess"))
        for _ in range(2)
    ]
    await asyncio.sleep(0)
    with pytest.raises(TryLater, match="login attempts in progress"):
        await logins.check(logins.admit("10.0.0.1", print), B, "token-b")
    await logins.check(logins.admit("10.0.0.2", print), B, "token-b")  # another address: in
    for task in waiting:
        with pytest.raises(AuthenticationError):
            await task


@pytest.mark.asyncio
async def test_connections_not_logged_in_are_capped_oldest_silent_one_first():
    """Over the per-address cap the oldest silent visitor goes; busy ones stay; all busy: refuse."""
    logins = Logins(
        Credentials(CREDENTIALS),
        max_unauthenticated=5,
        max_unauthenticated_per_address=2,
        throttle=AuthThrottle(base=60.0),
    )
    evicted: list[str] = []
    first = logins.admit("10.0.0.1", lambda reason: evicted.append(f"first: {reason}"))
    logins.admit("10.0.0.1", lambda reason: evicted.append("second"))
    logins.admit("10.0.0.1", lambda reason: evicted.append("third"))
    assert evicted == ["first: too many connections not logged in from 10.0.0.1 (limit 2)"]
    assert first.gone and logins.unauthenticated == 2
    # Two other addresses fill the total; the next newcomer pushes out the oldest silent one.
    logins.admit("10.0.0.2", lambda reason: evicted.append("fourth"))
    logins.admit("10.0.0.3", lambda reason: evicted.append("fifth"))
    logins.admit("10.0.0.4", lambda reason: evicted.append("sixth"))
    assert evicted[1:] == []
    logins.admit("10.0.0.5", lambda reason: evicted.append("seventh"))
    assert evicted[1:] == ["second"]
    # Visitors sending credentials are never evicted: when all are, newcomers are refused.
    busy = Logins(
        Credentials(CREDENTIALS),
        max_unauthenticated_per_address=2,
        throttle=AuthThrottle(base=60.0),
    )
    guesses = [
        asyncio.create_task(busy.check(busy.admit("10.0.0.1", evicted.append), B, "guess"))
        for _ in range(2)
    ]
    await asyncio.sleep(0)
    with pytest.raises(TryLater, match=r"not logged in from 10\.0\.0\.1 \(limit 2\)"):
        busy.admit("10.0.0.1", evicted.append)
    busy.close()  # the server stops: waiting failures are answered at once
    for task in guesses:
        with pytest.raises(AuthenticationError):
            await task
    assert evicted[1:] == ["second"]


# -- on the wire ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_connection_that_never_logs_in_is_closed_after_the_login_timeout():
    """Silent, or sending only stray replies: closed 1008 with a reason naming the deadline."""
    async with RelayServer(credentials=CREDENTIALS, login_timeout=0.3) as server:
        silent = await connect(server.url)
        chatty = await connect(server.url)
        await chatty.send('{"jsonrpc":"2.0","id":"x","result":{}}')
        for ws in (silent, chatty):
            code, reason = await _close_of(ws)
            assert code == 1008 and "log in" in reason
        good = RawClient(await connect(server.url))
        assert "result" in await good.handshake(A, CREDENTIALS[A])
        await asyncio.sleep(0.5)  # past the deadline: a logged-in client stays
        assert "result" in await good.call("blade.ping", {})


@pytest.mark.asyncio
async def test_an_invalid_frame_before_logging_in_is_answered_and_ends_the_connection():
    """Garbage before blade.connect: one error reply, then the server closes."""
    async with RelayServer(credentials=CREDENTIALS) as server:
        ws = await connect(server.url)
        await ws.send('{"jsonrpc":"2.0","id":"x","method":"blade.connect","params":7}')
        reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert reply["id"] == "x" and "params" in reply["error"]["message"]
        await _close_of(ws)


@pytest.mark.asyncio
async def test_idle_connections_from_one_address_cannot_lock_out_others():
    """Beyond the per-address cap the oldest idle socket is closed (1013); others get in."""
    async with RelayServer(credentials=CREDENTIALS, max_unauthenticated_per_address=3) as server:
        idle = [await connect(server.url) for _ in range(3)]
        newest = await connect(server.url)
        code, reason = await _close_of(idle[0])
        assert code == 1013 and "not logged in" in reason and "limit 3" in reason
        elsewhere = RawClient(await connect(server.url, local_addr=(OTHER_ADDRESS, 0)))
        assert "result" in await elsewhere.handshake(B, CREDENTIALS[B])
        same = RawClient(newest)
        assert "result" in await same.handshake(A, CREDENTIALS[A])  # it logs in: never evicted
        for _ in range(3):
            await connect(server.url)
        assert "result" in await same.call("blade.ping", {})


@pytest.mark.asyncio
async def test_another_projects_login_does_not_reset_the_failures_of_an_address():
    """B's wrong tokens, then A's right one from the same address: B's failures still count."""
    async with RelayServer(credentials=CREDENTIALS) as server:
        server.session_registry.throttle.maximum = 0.01
        for _ in range(3):
            bad = RawClient(await connect(server.url))
            assert "error" in await bad.handshake(B, "guess")
        good = RawClient(await connect(server.url))
        assert "result" in await good.handshake(A, CREDENTIALS[A])
        now = asyncio.get_running_loop().time()
        assert server.session_registry.throttle.failures("127.0.0.1", now) == 3


@pytest.mark.asyncio
async def test_parallel_guesses_beyond_the_bound_are_closed_unanswered_and_stop_is_prompt():
    """Two guesses wait; a third attempt (right token) is closed 1013 with no reply."""
    async with RelayServer(credentials=CREDENTIALS, max_login_attempts_per_address=2) as server:
        server.session_registry.throttle.base = 60.0  # failures wait a minute for their answer
        guesses = [await connect(server.url) for _ in range(2)]
        for ws in guesses:
            await ws.send(_connect_frame(B, "guess"))
        loop = asyncio.get_running_loop()
        while server.session_registry.throttle.failures("127.0.0.1", loop.time()) < 2:
            await asyncio.sleep(0.01)  # both guesses are in, waiting for their answer
        third = await connect(server.url)
        await third.send(_connect_frame(B, CREDENTIALS[B]))
        code, reason = await _close_of(third)
        assert code == 1013 and "login attempts in progress" in reason
        elsewhere = RawClient(await connect(server.url, local_addr=(OTHER_ADDRESS, 0)))
        assert "result" in await elsewhere.handshake(B, CREDENTIALS[B])
        began = loop.time()
    # stop() answers the waiting guesses rather than waiting out their minute
    assert loop.time() - began < 30
    for ws in guesses:
        await _close_of(ws)


def test_the_server_raises_its_open_files_limit_where_allowed():
    """A process started with 256 open files (hard limit higher) may open the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")
    script = (
        "import asyncio, resource\n"
        "from relaykit import RelayServer\n"
        "async def main():\n"
        "    async with RelayServer(credentials={'p': 't'}, asr_processes=0):\n"
        "        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 256
