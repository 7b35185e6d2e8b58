"""The code blocks of README.md and docs/*.md run, so they cannot drift.

What runs, per Markdown file, in document order, in a fresh folder that holds a copy of
the repository's `data/` as `make run` leaves it (`data/articles`, `data/documents` and
the bundled index `data/index`; `$SEMANTIC_QA_INDEX` points at it):

- ```python blocks: executed in one namespace per file. A comment right after a
  statement that calls `print` (no blank line between) is that print's output and is
  compared as console output is (below).
- ```console blocks: each line starting with `$ ` is a command (a trailing backslash
  continues it on the next line), run with bash; the lines up to the next `$ ` are its
  output (stdout and stderr together). `semantic-qa` runs this checkout's code, and
  `python`/`python3` the test's interpreter. A command that talks to the web form's
  server (http://127.0.0.1:7860) reaches a real `semantic-qa serve` of the bundled
  index that the test starts on a free port (the URL rewritten).

How output is compared. A command must exit 0, or 1 when its shown output is an error
(`semantic-qa: error: ...`). Shown output, when there is any, must match line by line
after two maskings: runs of spaces count as one, and every number counts as any
number. So the words, titles, messages, JSON keys and the shape of the output must stay
as shown, while scores, seconds, offsets and cache counts may change: they move
whenever ranking improves, on another machine, or with a warm embedding cache, and the
docs would otherwise break on every improvement. `...` in a shown line stands for any
text (`[...]`-style elision of a long passage), and a line of just `...` for any number
of lines. A command shown without output is run, its output not compared.

Shown only, never run: ```sh, ```bash, ```text, ```json (and the like) blocks: `make`,
installs, servers that run until stopped, anything needing the network, a GPU or a
Milvus server. Their `semantic-qa` commands are still parsed by the CLI's own argument
parser, their `make` targets looked up in the Makefile and the scripts they run looked
up in the repository. A ```python or ```console block may be left out only with
`<!-- not run: REASON -->` on the line before it; each one is reported as a skipped
test with its reason. Links between the pages must resolve, headings included.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qa.cli import _parser

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "console"}
SHOWN = {"sh", "bash", "text", "json", "toml", "yaml", "ini"}
SERVER_URL = "http://127.0.0.1:7860"
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)\s*$")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
ELLIPSIS = "..."
ERROR = re.compile(r"^semantic-qa: error: ", re.MULTILINE)
COMMAND_TIMEOUT_S = 300
# Commands that serve until stopped: never in a console block.
SERVES = re.compile(
    r"\s*(?:[A-Z_]+=\S*\s+)*(?:semantic-qa(?:\s+-v)?\s+serve|make\b.*\s(?:run|test)\b)"
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    text: str
    not_run: str | None = None  # the reason given in <!-- not run: ... -->

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Command:
    line: int
    command: str
    output: list[str] = field(default_factory=list)


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, indented ones (in lists) included."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        reason = NOT_RUN.search(before)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            line = lines[j]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            j += 1
        assert j < len(lines), f"{page.name}:{i + 1}: code block never closed"
        found.append(
            Block(
                page,
                i + 1,
                opening["lang"].lower(),
                "\n".join(body) + "\n",
                reason["reason"] if reason else None,
            )
        )
        i = j + 1
    return found


def commands(block: Block) -> list[Command]:
    """A console block as commands (`$ ` lines, `\\` continuing) and their output."""
    parsed: list[Command] = []
    continued = False
    for number, line in enumerate(block.text.splitlines(), block.line + 1):
        if continued:
            parsed[-1].command += "\n" + line
        elif line.startswith("$ "):
            parsed.append(Command(number, line[2:]))
        else:
            assert parsed, f"{block.where}: a console block starts with a `$ ` command"
            parsed[-1].output.append(line)
        continued = line.endswith("\\") and not parsed[-1].output
    return parsed


# -- how output is compared ---------------------------------------------------------------


def _normal(line: str) -> str:
    return NUMBER.sub("0", " ".join(line.split()))


def _line_matches(shown: str, actual: str) -> bool:
    parts = [re.escape(_normal(part)) for part in shown.split(ELLIPSIS)]
    return re.fullmatch(".*".join(parts), _normal(actual)) is not None


def matches(shown: list[str], actual: list[str]) -> bool:
    """`actual` lines as `shown` promises them (module docstring)."""
    shown, actual = _trimmed(shown), _trimmed(actual)

    def match(i: int, j: int) -> bool:
        if i == len(shown):
            return j == len(actual)
        if shown[i].strip() == ELLIPSIS:
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and _line_matches(shown[i], actual[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _trimmed(lines: list[str]) -> list[str]:
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def test_the_comparison_masks_numbers_and_nothing_else() -> None:
    assert matches(["1. [0.831] Title  (a.txt 10-20)"], ["1. [1.000] Title (a.txt 1323-1815)", ""])
    assert matches(['{"documents":5}'], ['{"documents":6}'])
    assert not matches(["indexed 5 documents"], ["indexed 5 articles"])
    assert not matches(["one"], ["one", "two"])  # more output than shown
    assert matches(["text: ... end"], ["text: anything at all end"])
    assert matches(["first", "...", "last"], ["first", "a", "b", "last"])
    assert matches(["first", "...", "last"], ["first", "last"])
    assert not matches(["first", "...", "last"], ["first", "a"])


# -- the pages' own checks, without running anything ----------------------------------------


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in [*PAGES[1:], ROOT / "SECURITY.md", ROOT / "BENCHMARKS.md"]:
        assert f"]({page.relative_to(ROOT)}" in readme, f"README.md does not link {page.name}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.MULTILINE | re.DOTALL)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_between_pages_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.MULTILINE | re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: link to {target}: no such heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_blocks_are_run_or_say_why_not(page: Path) -> None:
    for block in blocks(page):
        assert block.lang in RUN | SHOWN, (
            f"{block.where}: a ```{block.lang or '(no language)'} block: use ```python or "
            f"```console (run) or one of {sorted(SHOWN)} (shown only)"
        )
        if block.not_run is not None:
            assert block.not_run, f"{block.where}: <!-- not run: --> needs a reason"
            assert block.lang in RUN, f"{block.where}: a ```{block.lang} block is never run"


def _shown_commands(block: Block) -> Iterator[list[str]]:
    """The commands of a shell block, as words, one per pipeline stage or list item."""
    text = re.sub(r"\\\n", " ", block.text)
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError as err:
            raise AssertionError(f"{block.where}: cannot read {line!r}: {err}") from err
        command: list[str] = []
        for word in [*words, ";"]:
            if word in {"|", "||", "&&", ";", "&"} or word.endswith(("&", ";")):
                word = word.rstrip("&;")
                if word:
                    command.append(word)
                while command and re.fullmatch(r"[A-Z_]+=.*", command[0]):
                    command.pop(0)  # VAR=value before the command
                if command:
                    yield command
                command = []
            else:
                command.append(word)


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))


SHOWN_BLOCKS = [b for page in PAGES for b in blocks(page) if b.lang in {"sh", "bash"}]


@pytest.mark.parametrize("block", SHOWN_BLOCKS, ids=lambda b: b.where)
def test_shown_commands_are_real(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    """A block that is not run still names real commands, options, targets and scripts."""
    for words in _shown_commands(block):
        program = words[0].rsplit("/", 1)[-1]
        if program == "semantic-qa":
            try:
                _parser().parse_args(words[1:])
            except SystemExit as exit_:
                message = capsys.readouterr().err.strip()
                raise AssertionError(f"{block.where}: {shlex.join(words)}: {message}") from exit_
        elif program == "make":
            targets = [w for w in words[1:] if "=" not in w]
            assert set(targets) <= _make_targets(), f"{block.where}: {shlex.join(words)}"
        elif program in {"python", "python3"} and len(words) > 1 and words[1].endswith(".py"):
            script = words[1]
            if not script.startswith("../"):  # the team's shared folder may be elsewhere
                assert (ROOT / script).is_file(), f"{block.where}: no such script: {script}"


# -- running the blocks -----------------------------------------------------------------


@pytest.fixture(scope="session")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout's data/ after `make run`: the articles, documents and the index that
    `semantic-qa index data/articles --out data/index` builds (with the tests' own
    embedding cache)."""
    folder = tmp_path_factory.mktemp("bundled")
    shutil.copytree(
        ROOT / "data", folder / "data", ignore=shutil.ignore_patterns("index", "uploads")
    )
    command = [sys.executable, "-m", "qa.cli", "index", "data/articles", "--out", "data/index"]
    subprocess.run(command, cwd=folder, env=_env(folder), check=True, capture_output=True)
    return folder


@pytest.fixture(scope="session")
def shims(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`semantic-qa`, `python` and `python3` for the console blocks' bash."""
    folder = tmp_path_factory.mktemp("bin")
    for name, command in [
        ("semantic-qa", f'exec {shlex.quote(sys.executable)} -m qa.cli "$@"'),
        ("python", f'exec {shlex.quote(sys.executable)} "$@"'),
        ("python3", f'exec {shlex.quote(sys.executable)} "$@"'),
    ]:
        (folder / name).write_text(f"#!/bin/sh\n{command}\n", encoding="utf-8")
        (folder / name).chmod(0o755)
    return folder


def _env(folder: Path, bin_folder: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SEMANTIC_QA_AUTH"}
    env.update(
        PYTHONPATH=str(ROOT),
        SEMANTIC_QA_INDEX=str(folder / "data" / "index"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        COLUMNS="100",
    )
    if bin_folder is not None:
        env["PATH"] = f"{bin_folder}{os.pathsep}{env.get('PATH', '')}"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`semantic-qa serve` of the bundled index, started when a block first needs it."""

    def __init__(self, bundled: Path, folder: Path) -> None:
        self.bundled, self.folder = bundled, folder
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        if self.process is None:
            served = self.folder / "served"
            shutil.copytree(self.bundled / "data", served / "data")
            port = _free_port()
            command = [sys.executable, "-m", "qa.cli", "serve", "--index", "data/index"]
            command += ["--port", str(port)]
            self.process = subprocess.Popen(
                command,
                cwd=served,
                env=_env(served),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert self.process.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and lines[-1:] != ["Press Ctrl+C to stop."]:
                line = self.process.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
            assert lines[-1:] == ["Press Ctrl+C to stop."], "\n".join(lines)
            self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.communicate(timeout=60)


@pytest.fixture(scope="session")
def server(bundled: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    served = Server(bundled, tmp_path_factory.mktemp("server"))
    try:
        yield served
    finally:
        served.stop()


RUN_BLOCKS = [
    pytest.param(page, id=page.name)
    for page in PAGES
    if any(b.lang in RUN and b.not_run is None for b in blocks(page))
]
NOT_RUN_BLOCKS = [b for page in PAGES for b in blocks(page) if b.not_run is not None]


@pytest.mark.model
@pytest.mark.parametrize("page", RUN_BLOCKS)
def test_code_blocks_run(
    page: Path,
    tmp_path: Path,
    bundled: Path,
    shims: Path,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "semantic-qa"
    folder.mkdir()
    shutil.copytree(bundled / "data", folder / "data")
    env = _env(folder, shims)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("SEMANTIC_QA_INDEX", env["SEMANTIC_QA_INDEX"])
    monkeypatch.delenv("SEMANTIC_QA_AUTH", raising=False)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks(page):
        if block.lang not in RUN or block.not_run is not None:
            continue
        text = block.text
        if SERVER_URL in text:
            text = text.replace(SERVER_URL, server.start())
        if block.lang == "python":
            _run_python(block, text, namespace)
        else:
            for command in commands(Block(block.page, block.line, block.lang, text)):
                _run_command(block, command, folder, env)


@pytest.mark.parametrize("block", NOT_RUN_BLOCKS, ids=lambda b: b.where)
def test_blocks_not_run(block: Block) -> None:
    pytest.skip(f"{block.where}: not run: {block.not_run}")


def _run_python(block: Block, text: str, namespace: dict[str, object]) -> None:
    tree = ast.parse(text, filename=block.where)
    ast.increment_lineno(tree, block.line)
    lines = text.splitlines()
    for statement in tree.body:
        code = compile(ast.Module([statement], type_ignores=[]), str(block.page), "exec")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code, namespace)
        shown = _comment_after(lines, (statement.end_lineno or 0) - block.line)
        if shown and _prints(statement):
            actual = printed.getvalue().splitlines()
            assert matches(shown, actual), _mismatch(
                f"{block.page.name}:{statement.lineno}", shown, actual
            )
        else:
            sys.stdout.write(printed.getvalue())


def _prints(statement: ast.stmt) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
        for node in ast.walk(statement)
    )


def _comment_after(lines: list[str], end: int) -> list[str]:
    """The comment lines right after line `end` (from 1) of a block, without `# `."""
    shown = []
    for line in lines[end:]:
        if not line.lstrip().startswith("#"):
            break
        shown.append(re.sub(r"^\s*# ?", "", line))
    return shown


def _run_command(block: Block, command: Command, folder: Path, env: dict[str, str]) -> None:
    where = f"{block.page.name}:{command.line}"
    assert not SERVES.match(command.command), (
        f"{where}: `{command.command}` runs until stopped: show it in a ```sh block"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command.command],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    actual = done.stdout.splitlines()
    expected_status = 1 if ERROR.search("\n".join(command.output)) else 0
    assert done.returncode == expected_status, (
        f"{where}: `{command.command}` exited {done.returncode}, not {expected_status}:\n"
        + done.stdout
    )
    if _trimmed(command.output):
        assert matches(command.output, actual), _mismatch(where, command.output, actual)


def _mismatch(where: str, shown: list[str], actual: list[str]) -> str:
    return (
        f"{where}: the output differs from what the page shows (numbers aside)\n"
        "--- shown\n" + "\n".join(shown) + "\n--- actual\n" + "\n".join(actual)
    )
