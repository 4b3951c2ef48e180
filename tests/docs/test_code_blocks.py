"""Every code block of the documentation runs or is checked, as ``tests/docs/blocks.py`` says:
Python examples run (IVRs against a live server, called by a virtual caller), shell commands
name real programs, files and options, JSON parses (RELAY messages through relaykit's own
parsers), and shown output is what the program prints."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main

from relaykit import RelayServer
from relaykit.cli.main import app
from relaykit.protocol import blade, calling, jsonrpc
from tests.docs.blocks import (
    KINDS,
    ROOT,
    Block,
    all_blocks,
    commands_of,
    parse_steps,
)

BLOCKS = all_blocks()
RUN_TIMEOUT = 180  # seconds for one example program
CALL_TIMEOUT = 30.0  # seconds of call time for one expectation
DOC_URL = "ws://127.0.0.1:8080"
DOC_CREDENTIALS = {"my-project": "my-token"}


def test_the_docs_have_code_blocks_of_every_kind():
    """The collection sees the blocks (a parser that found none would pass everything)."""
    kinds = {b.kind for b in BLOCKS}
    assert {"script", "pytest", "ivr", "in-call", "async", "commands", "wire"} <= kinds
    assert len(BLOCKS) > 40


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_every_block_declares_a_known_kind(block: Block):
    assert block.language in KINDS, (
        f"{block.id}: a ```{block.language or '(no language)'} block; use one of "
        f"{sorted(KINDS)} (see tests/docs/blocks.py)"
    )
    assert block.kind in KINDS[block.language], (
        f"{block.id}: kind {block.kind!r} is not one of {KINDS[block.language]} for "
        f"{block.language}: mark it <!-- check: KIND --> (see tests/docs/blocks.py)"
    )


def _of_kind(*kinds: str) -> list[Any]:
    chosen = [b for b in BLOCKS if b.kind in kinds and b.language in KINDS]
    return [pytest.param(b, id=b.id) for b in chosen]


# -- Python ------------------------------------------------------------------------------------

_ASYNC_RUNNER = """\
import ast, asyncio, sys
source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
async def main():
    result = eval(code, {"__name__": "__main__"})
    if result is not None:
        await result
asyncio.run(main())
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=_env()
    )


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("block", _of_kind("script", "async"))
def test_python_program_runs(block: Block, tmp_path: Path):
    program = tmp_path / "example.py"
    program.write_text(block.code)
    if block.kind == "async":
        (tmp_path / "_runner.py").write_text(_ASYNC_RUNNER)
        done = _run([sys.executable, "_runner.py", "example.py"], tmp_path)
    else:
        done = _run([sys.executable, "example.py"], tmp_path)
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("block", _of_kind("pytest"))
def test_python_test_file_passes(block: Block, tmp_path: Path):
    (tmp_path / "test_example.py").write_text(block.code)
    options = block.args.split()
    env = _env()
    for needed in [o.removeprefix("needs=") for o in options if o.startswith("needs=")]:
        (named,) = [b for b in BLOCKS if b.page == block.page and b.name == needed]
        (tmp_path / needed).write_text(named.code)
        if named.kind == "v2-ivr":
            from tests.compat.v2 import ensure_venv

            env["V2_PYTHON"] = str(ensure_venv())
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    args += [o for o in options if not o.startswith("needs=")]
    done = subprocess.run(
        [*args, "test_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"
    assert re.search(r"\b\d+ passed\b", done.stdout), done.stdout


@pytest.mark.parametrize("block", _of_kind("excerpt"))
def test_quoted_code_is_in_its_file(block: Block):
    source = [line.strip() for line in (ROOT / block.args).read_text().splitlines()]
    quoted = [line.strip() for line in block.code.strip().splitlines()]
    starts = [i for i, line in enumerate(source) if line == quoted[0]]
    assert any(source[i : i + len(quoted)] == quoted for i in starts), (
        f"{block.id}: these lines are not in {block.args} as quoted"
    )


# A failure is printed before the hang-up, so the test sees it however soon the call ends.
_IN_CALL = """\
import traceback

from relaykit import Consumer


class Example(Consumer):
    contexts = ["{context}"]

    async def on_incoming_call(self, call):
        await call.answer()
        try:
{body}
        except Exception:
            traceback.print_exc()
            raise
        finally:
            await call.hangup()


Example(project="my-project", token="my-token", url="ws://127.0.0.1:8080").run()
"""


def _ivr_program(block: Block, context: str) -> str:
    if block.kind == "in-call":
        body = "\n".join(f"            {ln}" if ln else "" for ln in block.code.splitlines())
        return _IN_CALL.format(context=context, body=body)
    return block.code


@pytest.mark.asyncio
@pytest.mark.parametrize("block", _of_kind("ivr", "in-call", "v2-ivr"))
async def test_ivr_answers_a_virtual_caller(block: Block, tmp_path: Path):
    """The IVR runs as its own program against a live server; a virtual caller follows the
    block's steps and the IVR must hang up without an error."""
    steps = parse_steps(block.args)
    program = _ivr_program(block, steps.context)
    env = _env()
    if block.kind == "v2-ivr":
        from tests.compat.v2 import ensure_venv

        python = str(await asyncio.to_thread(ensure_venv))
    else:
        python = sys.executable
        assert DOC_URL in program, f"{block.id}: an IVR connects to {DOC_URL} in the docs"
    async with RelayServer(credentials=DOC_CREDENTIALS, media_dirs=[tmp_path]) as server:
        if steps.callees:
            server.callees(steps.callees)
        (tmp_path / "ivr.py").write_text(program.replace(DOC_URL, server.url))
        env["SIGNALWIRE_HOST"] = server.url  # the v2 examples read their host from it
        ivr = await asyncio.create_subprocess_exec(
            python,
            "ivr.py",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        failure: BaseException | None = None
        try:
            caller = await server.dial_in(context=steps.context, timeout=60)
            await caller.wait_answered(timeout=CALL_TIMEOUT)
            for verb, arg in steps.steps:
                if verb == "expect":
                    await caller.expect_prompt(contains=arg, timeout=CALL_TIMEOUT)
                elif verb == "press":
                    await caller.wait_listening(timeout=CALL_TIMEOUT)
                    await caller.press(arg)
                elif verb == "say":
                    await caller.wait_listening(timeout=CALL_TIMEOUT)
                    await caller.say(arg)
                elif verb == "say-now":
                    await caller.say(arg)
                elif verb == "press-now":
                    await caller.press(arg)
                elif verb == "machine":
                    await caller.answer_as_machine()
                elif verb == "human":
                    await caller.answer_as_human(arg or "Hello?")
                elif verb == "silence":
                    await caller.silence(float(arg))
                elif verb == "hangup":
                    await caller.wait_listening(timeout=CALL_TIMEOUT)
                    await caller.hangup()
            if not caller.ended:
                await caller.expect_hangup(timeout=CALL_TIMEOUT)
        except Exception as exc:  # reported below with what the IVR printed
            failure = exc
        finally:
            if ivr.returncode is None:
                ivr.kill()
            output, _ = await ivr.communicate()
        log = output.decode(errors="replace")
        assert failure is None, f"{block.id}: {failure}\nThe IVR printed:\n{log}"
        assert "Traceback" not in log, f"{block.id}: the IVR failed:\n{log}"


# -- shell commands ----------------------------------------------------------------------------

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])
# Programs the docs run that are not relaykit's; their file arguments are checked.
EXTERNAL = {"sipp", "baresip", "nats-server", "kamailio", "ssh", "mkdocs", "cd"}
TOP_DIRS = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _ci_apt_packages() -> set[str]:
    run = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"apt-get install -y --no-install-recommends ([^)]*)\)", run)
    assert match, ".ci/run installs its Debian packages with apt-get"
    return set(match[1].split())


@functools.cache
def _help_text(*command: str) -> str:
    done = subprocess.run(
        [sys.executable, *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert done.returncode == 0, f"{' '.join(command)} --help failed:\n{done.stderr}"
    return done.stdout


def _options_named(args: list[str]) -> list[str]:
    return [a.split("=")[0] for a in args if a.startswith("-") and a not in ("-", "--")]


def _check_relaykit(args: list[str]) -> None:
    """Parse the arguments with the CLI's own parser (nothing runs)."""
    group = typer.main.get_command(app)
    if args in (["--version"], ["--help"], []):
        return
    name, rest = args[0], args[1:]
    with group.make_context("relaykit", [], resilient_parsing=True) as ctx:  # no help page
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None, f"relaykit has no command {name!r}"
        if "--help" in rest:
            return
        command.make_context(name, list(rest), parent=ctx)


def _check_requirement(spec: str) -> None:
    name, _, extras = spec.partition("[")
    if name in (".", "relaykit") or name.endswith(".whl"):
        for extra in filter(None, extras.rstrip("]").split(",")):
            assert extra in EXTRAS, f"relaykit has no extra {extra!r} ({sorted(EXTRAS)})"
        return
    declared = {
        re.split(r"[\[<>=!~ ]", requirement)[0]
        for group in PYPROJECT["project"]["optional-dependencies"].values()
        for requirement in group
    }
    assert spec == "signalwire==2.1.1" or spec in declared, f"the docs install {spec!r}"


def _check_pip(args: list[str]) -> None:
    if args[:1] != ["install"]:
        raise AssertionError(f"pip {' '.join(args)}: the docs only install")
    for arg in args[1:]:
        if not arg.startswith("-"):
            _check_requirement(arg)


def _check_python(args: list[str], page_text: str) -> None:
    if args[:1] == ["-m"]:
        module, rest = args[1], args[2:]
        if module == "pip":
            _check_pip(rest)
        elif module in ("venv", "build", "mkdocs"):
            return
        elif module == "pytest":
            known = _help_text("-m", "pytest")
            for option in _options_named(rest):
                assert option in known, f"pytest has no option {option} here"
        elif module.split(".")[0] in ("benchmarks", "fuzzing", "relaykit"):
            known = _help_text("-m", module)
            for option in _options_named(rest):
                assert option in known, f"python -m {module} has no option {option}"
        else:
            raise AssertionError(f"python -m {module}: not a module the docs should run")
        return
    script, rest = args[0], args[1:]
    if (ROOT / script).exists():
        known = _help_text(script)
        for option in _options_named(rest):
            assert option in known, f"{script} has no option {option}"
    else:
        assert f"`{Path(script).name}`" in page_text, (
            f"{script} is neither in the repository nor a file the page names"
        )


def _check_command(argv: list[str], page_text: str) -> None:
    while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
        argv = argv[1:]
    program, args = argv[0], argv[1:]
    name = Path(program).name
    if name == "relaykit":
        _check_relaykit(args)
    elif re.fullmatch(r"python(3(\.\d+)?)?", name):
        _check_python(args, page_text)
    elif name == "pip":
        _check_pip(args)
    elif name == "apt-get":
        if args[:1] == ["install"]:
            packages = {a for a in args[1:] if not a.startswith("-")}
            allowed = _ci_apt_packages()
            assert packages <= allowed, f"apt-get installs {packages - allowed}, not in .ci/run"
        else:
            assert args == ["update"], f"apt-get {' '.join(args)}"
    elif "/" in program:
        path = ROOT / program
        assert path.is_file() and os.access(path, os.X_OK), f"{program} is not a script here"
    else:
        assert name in EXTERNAL, f"{program}: not a program the docs know (add it to EXTERNAL)"
    for arg in args:
        if "/" in arg and arg.split("/")[0] in TOP_DIRS and "://" not in arg:
            assert (ROOT / arg).exists(), f"{arg} is not in the repository"


@pytest.mark.parametrize("block", _of_kind("commands"))
def test_shell_commands_name_real_programs_files_and_options(block: Block):
    commands = commands_of(block.code)
    assert commands, f"{block.id}: an empty shell block"
    page_text = (ROOT / block.page).read_text()
    for command in commands:
        try:
            _check_command(command, page_text)
        except (AssertionError, typer.Exit) as exc:
            raise AssertionError(f"{block.id}: {' '.join(command)}: {exc}") from exc
        except Exception as exc:  # the CLI parser's usage errors
            raise AssertionError(
                f"{block.id}: {' '.join(command)}: {type(exc).__name__}: {exc}"
            ) from exc


def test_install_commands_are_the_readmes():
    """Every install-and-run line of the docs that starts from apt-get is one of the README's
    quick-start commands, which .ci/run runs."""
    readme = {
        line
        for b in BLOCKS
        if b.page == "README.md" and b.kind == "commands"
        for line in b.code.splitlines()
        if line.startswith("(apt-get update")
    }
    assert len(readme) == 2
    for block in BLOCKS:
        for line in block.code.splitlines():
            if block.kind == "commands" and line.startswith("(apt-get update"):
                assert line in readme, f"{block.id}: {line!r} is not the README's"


# -- JSON --------------------------------------------------------------------------------------

_PARAMS = {
    calling.RECEIVE: calling.ReceiveParams,
    calling.ANSWER: calling.AnswerParams,
    calling.END: calling.EndParams,
    calling.BEGIN: calling.BeginParams,
    calling.DIAL: calling.DialParams,
    calling.PLAY: calling.PlayParams,
    calling.PLAY_STOP: calling.ControlParams,
    calling.PLAY_VOLUME: calling.VolumeParams,
    calling.PLAY_AND_COLLECT: calling.PlayAndCollectParams,
    calling.PLAY_AND_COLLECT_STOP: calling.ControlParams,
    calling.PLAY_AND_COLLECT_VOLUME: calling.VolumeParams,
    calling.RECORD: calling.RecordParams,
    calling.RECORD_STOP: calling.ControlParams,
    calling.SEND_DIGITS: calling.SendDigitsParams,
    calling.DETECT: calling.DetectParams,
    calling.DETECT_STOP: calling.ControlParams,
    calling.TAP: calling.TapParams,
    calling.TAP_STOP: calling.ControlParams,
    calling.CONNECT: calling.ConnectParams,
    calling.DISCONNECT: calling.DisconnectParams,
}


def _check_wire(message: Any) -> None:
    """A RELAY message, as the server or the SDK would read it."""
    parsed = jsonrpc.parse_message(json.dumps(message))
    if isinstance(parsed, jsonrpc.Request):
        if parsed.method == "blade.connect":
            blade.ConnectParams.parse(parsed.params)
        elif parsed.method == "blade.execute":
            execute = blade.ExecuteParams.parse(parsed.params)
            assert execute.method in _PARAMS, f"no parser for {execute.method}"
            _PARAMS[execute.method].parse(execute.params)
        elif parsed.method == "blade.broadcast":
            broadcast = blade.parse_broadcast(parsed.params)
            if broadcast.event_type == calling.COLLECT_EVENT and "result" in broadcast.params:
                assert isinstance(calling.is_terminal_collect(broadcast.params), bool)
        else:
            assert parsed.method in ("blade.ping", "blade.disconnect", "blade.protocol"), (
                parsed.method
            )


@pytest.mark.parametrize("block", _of_kind("json", "wire", "device"))
def test_json_parses_and_relay_messages_validate(block: Block):
    value = json.loads(block.code)
    if block.kind == "wire":
        _check_wire(value)
    elif block.kind == "device":
        calling.Device.parse(value, "device")


# -- shown output and files --------------------------------------------------------------------

_EVENT_LINE = re.compile(r"^\s*\d+\.\d+s\s+(\w+)\s+(.*)$")


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "relaykit", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**_env(), "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("block", _of_kind("demo-output"))
def test_shown_demo_output_is_what_the_demo_prints(block: Block, demo_output: str):
    real = [m.groups() for m in map(_EVENT_LINE.match, demo_output.splitlines()) if m]
    shown = [m.groups() for m in map(_EVENT_LINE.match, block.code.splitlines()) if m]
    assert shown and [(a, " ".join(t.split())) for a, t in shown] == [
        (a, " ".join(t.split())) for a, t in real
    ], f"{block.id}: the demo prints\n{demo_output}"
    for line in block.code.splitlines():
        if line.strip() and not _EVENT_LINE.match(line):
            stem = re.split(r"[/…]", line)[0].strip()
            assert stem in demo_output, f"{block.id}: the demo does not print {stem!r}"


@pytest.mark.parametrize("block", _of_kind("baresip-config"))
def test_baresip_config_uses_real_keys_and_modules(block: Block):
    tested = (ROOT / "tests" / "sip" / "data" / "baresip" / "config").read_text()
    keys = {ln.split()[0] for ln in tested.splitlines() if ln.strip() and ln[0] != "#"}
    modules = Path("/usr/lib/baresip/modules")
    for line in block.code.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, value = line.split()[0], line.split()[1]
        assert key in keys, f"{block.id}: {key} is not a key relaykit's baresip tests use"
        if key.startswith("module") and modules.is_dir():
            assert (modules / value).exists(), f"{block.id}: baresip has no module {value}"
