"""The cluster adapter's small parts, and what a single node must not pay for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from relaykit.cluster import check_node_id, is_node_id, parse_address
from relaykit.cluster.subjects import offer, token
from relaykit.server import RelayServer


@pytest.mark.parametrize("node", ["n1", "node-2", "eu_west_3", "a" * 64])
def test_node_ids_are_single_subject_tokens(node):
    assert check_node_id(node) == node


@pytest.mark.parametrize("node", ["", "n.1", "n*", ">", "n 1", "a" * 65, "nœud"])
def test_a_node_id_that_would_break_a_subject_is_refused(node):
    assert not is_node_id(node)
    with pytest.raises(ValueError, match="node id"):
        check_node_id(node)


def test_free_text_becomes_one_token_and_different_texts_stay_different():
    texts = ["office", "sales.eu", "a b", "*", ">", "x41", "A", "offi ce", "übung", "x"]
    tokens = [token(t) for t in texts]
    assert token("office") == "office"
    assert all(is_node_id(t) or len(t) > 64 for t in tokens)
    assert all("." not in t and "*" not in t and ">" not in t and " " not in t for t in tokens)
    assert len(set(tokens)) == len(texts)
    assert offer("proj.1", "sales eu").count(".") == 3  # rk.offer.<project>.<context>


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1:5090", ("127.0.0.1", 5090)), ("udp:10.0.0.2:8090", ("10.0.0.2", 8090))],
)
def test_kamailio_rpc_addresses(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["127.0.0.1", ":5090", "host:0", "host:99999", "host:x"])
def test_a_bad_kamailio_rpc_address_is_refused(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)


def test_cluster_mode_needs_a_node_id():
    with pytest.raises(ValueError, match="node_id"):
        RelayServer(credentials={"p": "t"}, cluster="nats://127.0.0.1:4222")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_single_node_loads_no_bus():
    """Without cluster=, neither nats-py nor relaykit.cluster is imported, started or not."""
    run = _run(
        """
        import asyncio, sys
        from relaykit.server import RelayServer

        async def main():
            async with RelayServer(credentials={"p": "t"}, asr_processes=0) as server:
                assert server.cluster is None
        asyncio.run(main())
        prefixes = ("nats.", "relaykit.cluster")
        print(sorted(m for m in sys.modules if m == "nats" or m.startswith(prefixes)))
        """
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_cluster_mode_without_nats_py_names_the_extra():
    run = _run(
        """
        import asyncio, sys
        sys.modules["nats"] = None  # as if nats-py were not installed
        from relaykit.cluster import BusUnavailable
        from relaykit.server import RelayServer

        async def main():
            server = RelayServer(credentials={"p": "t"}, cluster="nats://127.0.0.1:1", node_id="n1")
            try:
                await server.start()
            except BusUnavailable as exc:
                print(exc)
        asyncio.run(main())
        """
    )
    assert run.returncode == 0, run.stderr
    assert "pip install 'relaykit[cluster]'" in run.stdout


def test_serve_with_a_bus_that_is_not_there_exits_with_a_clear_error():
    pytest.importorskip("nats")
    run = subprocess.run(
        [sys.executable, "-m", "relaykit", "serve", "--port", "0", "--project", "p",
         "--token", "t", "--cluster", "nats://127.0.0.1:1", "--node-id", "n1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "cannot reach the bus at nats://127.0.0.1:1" in run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--project", "p", "--token", "t", "--cluster", "nats://x:1"], "--node-id"),
        (["serve", "--project", "p", "--token", "t", "--kamailio-rpc", "nope"], "HOST:PORT"),
        (["drain", "n.1", "--cluster", "nats://127.0.0.1:1"], "node id"),
    ],
)
def test_cluster_options_are_checked(args, message):
    run = subprocess.run(
        [sys.executable, "-m", "relaykit", *args], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stdout


def test_the_cluster_benchmark_runs():
    """``python -m benchmarks.cluster --quick`` exits 0 and prints its tables (figures are
    the benchmark's business, not the test's)."""
    from tests.cluster.nodes import REPO, require, require_nats_py

    require_nats_py()
    require("nats-server", "nats-server")
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    for heading in ("command round trip", "call set-ups per second", "faults"):
        assert heading in run.stdout
    assert '"restored": true' in run.stdout
