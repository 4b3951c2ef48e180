"""Call timelines need the ``plot`` extra; without it, the error says how to get it."""

from __future__ import annotations

import subprocess
import sys


def test_without_the_plot_extra_the_timeline_names_the_extra(tmp_path):
    """With matplotlib absent, drawing a timeline says which extra installs it; the CLI exits 2."""
    log = tmp_path / "call.json"
    log.write_text('{"format": "relaykit-call-log/2", "events": []}')
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from typer.testing import CliRunner\n"
        "from relaykit.cli.main import app\n"
        "from relaykit.errors import MissingExtraError\n"
        "from relaykit.testing.timeline import render_timeline\n"
        "try:\n"
        f"    render_timeline({{'events': []}}, None, {str(tmp_path / 'x.png')!r})\n"
        "except MissingExtraError as exc:\n"
        "    print('error:', exc)\n"
        f"result = CliRunner().invoke(app, ['timeline', {str(log)!r}])\n"
        "print('exit:', result.exit_code, ' '.join(result.output.split()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "error: drawing a call timeline needs relaykit's 'plot' extra" in out
    assert "pip install 'relaykit[plot]'" in out
    assert "exit: 2" in out and "relaykit[plot]" in out.split("exit: 2", 1)[1]
