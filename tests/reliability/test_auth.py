"""Credentials and the failed-login throttle, on their own."""

from __future__ import annotations

import json

import pytest

from relaykit.server.auth import AuthThrottle, Credentials, load_credentials


def test_credentials_compare_tokens_and_never_show_them():
    """check() needs the exact token of the exact project; repr() hides every token."""
    creds = Credentials({"p": "secret-token"})
    assert creds.check("p", "secret-token")
    assert not creds.check("p", "secret-tokem")
    assert not creds.check("q", "secret-token")
    assert not creds.check("p", "")
    assert "secret" not in repr(creds)


def test_credentials_load_from_json_or_lines(tmp_path):
    """A credentials file is JSON or project:token lines; a bad line names its number."""
    (tmp_path / "c.json").write_text(json.dumps({"p": "t"}))
    (tmp_path / "c.txt").write_text("# comment\np:t\nq: u \n")
    (tmp_path / "bad.txt").write_text("p:t\nnocolon\n")
    assert load_credentials(tmp_path / "c.json") == {"p": "t"}
    assert load_credentials(tmp_path / "c.txt") == {"p": "t", "q": "u"}
    with pytest.raises(ValueError, match=r"bad\.txt:2"):
        load_credentials(tmp_path / "bad.txt")


def test_auth_throttle_doubles_the_delay_per_failure_and_forgets_after_the_window():
    """Failures from one address slow down exponentially, capped; others are unaffected."""
    throttle = AuthThrottle(base=0.1, maximum=1.0, window=60)
    delays = [throttle.failure("10.0.0.1", now=t) for t in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert throttle.failure("10.0.0.2", now=6) == 0.1
    assert throttle.failure("10.0.0.1", now=200) == 0.1  # the window passed
    throttle.success("10.0.0.1")
    assert throttle.failures("10.0.0.1", now=200) == 0
