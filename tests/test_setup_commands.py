"""The README's two set-up commands: fresh venvs, nothing from the machine's own Python, CI runs
the second one verbatim."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    block = quick_start.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_has_exactly_two_commands_each_in_a_fresh_venv():
    """Demo and tests each make a fresh .venv and use only its pip and tools."""
    demo, tests = _readme_commands()
    for command in (demo, tests):
        assert "python3 -m venv --clear .venv" in command
        assert ".venv/bin/pip install -e " in command
        assert "python3 -m pip" not in command and " pip install" not in command.replace(
            ".venv/bin/pip install", ""
        )
    assert demo.endswith(".venv/bin/relaykit demo")
    assert tests.endswith(".venv/bin/python -m pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    """.ci/run's command is the README's second command, character for character."""
    _demo, tests = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == tests
