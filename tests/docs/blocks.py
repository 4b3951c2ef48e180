"""The documentation's code blocks, and how each kind is checked.

Every fenced block of the site's pages and of the README is found here. A block says what it
is by its language and, where the language alone does not say how to run it, by an HTML comment
on the line before the fence, invisible in the rendered page:

    <!-- check: KIND ARGS -->

| language | kind (default first) | how it is checked |
|---|---|---|
| python | ``script`` | run as a program; must exit 0 |
| | ``pytest ARGS`` | saved as a test file, run by pytest with ARGS; must pass |
| | ``pytest needs=F`` | likewise, beside the page's block marked ``name=F`` (see below) |
| | ``ivr STEPS`` | a whole IVR program, run against a live server and called |
| | ``in-call STEPS`` | the body of ``on_incoming_call`` (``call`` answered), called |
| | ``v2-ivr STEPS`` | an IVR for signalwire 2.1.1, run in that SDK's venv, called |
| | ``async`` | a program with top-level ``await``; must exit 0 |
| | ``excerpt FILE`` | lines quoted from FILE: they are there, in this order, together |
| bash | ``commands`` | each command names real programs, files, modules, extras, options |
| json | ``json`` | parses |
| | ``wire`` | a RELAY message, validated by relaykit's own protocol parsers |
| | ``device`` | a ``calling.begin`` device, validated likewise |
| text | ``demo-output`` | the lines ``relaykit demo`` prints (times and paths aside) |
| | ``baresip-config`` | keys baresip's own test config uses, modules baresip ships |

"Called": a virtual caller follows STEPS: ``context=NAME`` (default ``office``) and
``callees=NUMBER:BEHAVIOUR,…`` (the server's virtual callees, for IVRs that connect or dial;
``*`` is every other number), then steps
separated by ``;``: ``expect TEXT``, ``press KEYS``, ``press-now KEYS``, ``say TEXT``,
``say-now TEXT``, ``silence SECONDS``, ``hangup``, ``machine`` (an answering machine's
greeting and beep), ``human [TEXT]``. Press, say and hangup wait until a prompt listens (the
-now forms do not); after the last step the caller waits for the IVR to hang up, unless it
hung up itself. An IVR's URL ``ws://127.0.0.1:8080`` and credentials ``my-project``/
``my-token`` are the test server's. A block needed by a v2 test runs with ``V2_PYTHON`` set
to the python of signalwire 2.1.1's venv.

Any other language, or a kind that does not fit its language, fails: nothing is left unchecked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

KINDS = {
    "python": ("script", "pytest", "ivr", "in-call", "v2-ivr", "async", "excerpt"),
    "bash": ("commands",),
    "json": ("json", "wire", "device"),
    "text": ("demo-output", "baresip-config"),
}
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*check:\s*(?P<kind>[\w-]+)(?P<args>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its check and its text."""

    page: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    language: str
    kind: str
    args: str
    code: str
    name: str = ""  # a file name other blocks of the page can ask for (``name=FILE``)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Steps:
    """What the virtual caller does on a call made to check an IVR block."""

    context: str = "office"
    callees: dict[str, str] = field(default_factory=dict)  # number → behaviour
    steps: list[tuple[str, str]] = field(default_factory=list)


def parse_steps(args: str) -> Steps:
    steps = Steps()
    text = args.strip()
    while text.startswith(("context=", "callees=")):
        first, _, text = text.partition(";")
        key, _, value = first.strip().partition("=")
        if key == "context":
            steps.context = value.strip()
        else:
            for entry in value.split(","):
                number, _, behaviour = entry.strip().rpartition(":")
                if not number or not behaviour:
                    raise ValueError(f"callees entry {entry!r} is not NUMBER:BEHAVIOUR")
                steps.callees[number] = behaviour
        text = text.strip()
    for part in filter(None, (p.strip() for p in text.split(";"))):
        verb, _, rest = part.partition(" ")
        if verb not in (
            "expect",
            "press",
            "press-now",
            "say",
            "say-now",
            "silence",
            "hangup",
            "machine",
            "human",
        ):
            raise ValueError(f"unknown caller step {verb!r} in {args!r}")
        steps.steps.append((verb, rest.strip().strip('"')))
    return steps


def pages() -> list[Path]:
    """The site's markdown sources and the README (the benchmark pages come from benchmarks/)."""
    found = [p for p in DOCS.rglob("*.md") if "hooks" not in p.parts]
    found += [ROOT / "README.md", *(ROOT / "benchmarks" / n for n in ("README.md", "RESULTS.md"))]
    found.append(ROOT / "benchmarks" / "AMD.md")
    return sorted(found)


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        info = opening["info"].strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1
        language = info.split()[0] if info else ""
        previous = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = _MARKER.match(previous)
        kind = marker["kind"] if marker else (KINDS.get(language, ("",))[0])
        args = marker["args"].strip() if marker else ""
        named = re.match(r"name=(\S+)\s*", args)
        found.append(
            Block(
                page=str(path.relative_to(ROOT)),
                line=start + 1,
                language=language,
                kind=kind,
                args=args[named.end() :] if named else args,
                code="\n".join(body) + "\n",
                name=named[1] if named else "",
            )
        )
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks_of(page)]


def commands_of(code: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, comments dropped, split at
    ``&&``, ``||``, ``;``, ``|`` and ``&``, subshell parentheses removed."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands: list[list[str]] = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars="();&|")
        lexer.whitespace_split = True
        lexer.commenters = ""  # a '#' only starts a comment as a word of its own: 427# is keys
        current: list[str] = []
        for token in lexer:
            if token.startswith("#"):
                break
            if token and set(token) <= set("();&|"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
        if current:
            commands.append(current)
    return commands
