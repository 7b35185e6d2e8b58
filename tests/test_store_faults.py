"""Crash safety of saved indexes: a save that fails or is killed at any point leaves
the previous index loadable and giving the same results; a full disk or a read-only
folder is a clear error (QAError) that loses nothing."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import qa
from qa import store
from qa.cli import main
from qa.verify import verify

from .conftest import ROOT, TINY, FakeEncoder

EDITED = qa.Document("rivers", "The Rhine flows through Basel. It reaches the North Sea.", "Rivers")
NEW = qa.Document("lakes", "Lake Geneva lies between France and Switzerland.", "Lakes")

CHANGES: dict[str, Callable[[qa.Index], object]] = {
    "update": lambda index: index.update([EDITED]),
    "add": lambda index: index.add([NEW]),
    "remove": lambda index: index.remove(["space"]),
    "sync": lambda index: index.sync([NEW, EDITED]),
    "rebuild": lambda index: qa.build_index([NEW], index.path, model=index.encoder),
}


def _snapshot(index: qa.Index) -> list[list[dict]]:
    return [[h.to_dict() for h in index.search(q, k=5)] for q in ["cats purr", "Danube", "Moon"]]


def _files(path: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in path.iterdir()}


def _fail_on_call(n: int, real: Callable, error: OSError) -> Callable:
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == n:
            raise error
        return real(*args, **kwargs)

    return failing


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("where", ["_atomic_write", "os.replace"])
def test_a_failure_at_any_write_keeps_the_previous_index(
    tmp_path: Path, fake: FakeEncoder, monkeypatch, change: str, where: str
) -> None:
    """Fail the 1st, 2nd, ... file write of a save (before it starts, or after the
    temporary file is written but before it is renamed) until a save gets through."""
    path = tmp_path / "idx"
    index = qa.build_index(TINY, path, model=fake)
    expected, files = _snapshot(index), _files(path)
    target, name = (store, "_atomic_write") if where == "_atomic_write" else (os, "replace")
    real = getattr(target, name)
    for n in range(1, 50):
        monkeypatch.setattr(target, name, _fail_on_call(n, real, OSError(errno.EIO, "I/O error")))
        try:
            CHANGES[change](index)
        except qa.IndexWriteError as err:
            assert "the index there is unchanged" in str(err)
        else:
            break
        finally:
            monkeypatch.setattr(target, name, real)
        loaded = qa.load_index(path, model=fake)
        assert _snapshot(loaded) == expected and _snapshot(index) == expected
        np.testing.assert_array_equal(loaded.keys, index.keys)
        assert _files(path) == files  # nothing half-written left behind
    assert n > 3  # data files and the manifest were each a failure point
    assert verify(path, model=fake).ok


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (PermissionError(errno.EACCES, "Permission denied"), "the folder is not writable"),
        (OSError(errno.EROFS, "Read-only file system"), "the folder is not writable"),
    ],
)
def test_full_disk_and_read_only_folder_are_clear_errors(
    tmp_path: Path, fake: FakeEncoder, monkeypatch, capsys, error: OSError, message: str
) -> None:
    path = tmp_path / "idx"
    index = qa.build_index(TINY, path, model=fake)
    expected, files = _snapshot(index), _files(path)
    # the OS refuses the first temporary file of the save, as it does in such a folder
    monkeypatch.setattr(store.tempfile, "mkstemp", _fail_on_call(1, store.tempfile.mkstemp, error))
    with pytest.raises(
        qa.IndexWriteError, match=f"cannot save the index to {path}: {message}"
    ) as err:
        index.update([EDITED])
    assert str(err.value).endswith("; the index there is unchanged")
    assert isinstance(err.value, qa.QAError) and isinstance(err.value, OSError)
    assert _files(path) == files
    assert _snapshot(qa.load_index(path, model=fake)) == expected
    # the command line: one line on stderr, exit status 1, no traceback
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "new.md").write_text("# New\n\nSomething new.\n")
    monkeypatch.setattr("qa.index.load_encoder", lambda name: fake)
    monkeypatch.setattr(store.tempfile, "mkstemp", _fail_on_call(1, store.tempfile.mkstemp, error))
    out = tmp_path / "fresh"
    assert main(["index", str(articles), "--out", str(out), "--model", "fake-bow"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith(f"semantic-qa: error: cannot save the index to {out}: {message}")
    assert stderr.endswith("; nothing was saved\n")


def test_upload_to_a_full_disk_is_refused_and_the_form_keeps_its_index(
    tmp_path: Path, fake: FakeEncoder, monkeypatch
) -> None:
    from ui.handlers import LiveIndex

    index = qa.build_index(TINY, tmp_path / "idx", model=fake)
    live = LiveIndex(index)
    (tmp_path / "new.md").write_text("# Volcanoes\n\nEtna erupts often in Sicily.", "utf-8")
    error = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(store, "_atomic_write", _fail_on_call(1, store._atomic_write, error))
    page = live.upload([str(tmp_path / "new.md")])
    assert "Not added: cannot save the index to" in page and "the disk is full" in page
    assert "The index is unchanged" in page
    assert live.index is index
    assert len(qa.load_index(tmp_path / "idx", model=fake).documents) == 3


def test_a_damaged_file_of_the_same_content_is_rewritten(tmp_path: Path, fake: FakeEncoder) -> None:
    path = tmp_path / "idx"
    index = qa.build_index(TINY, path, model=fake)
    vectors = next(path.glob("vectors-*.npy"))
    vectors.write_bytes(vectors.read_bytes()[:-8])
    with pytest.raises(qa.IndexCorruptError, match="truncated or edited"):
        qa.load_index(path, model=fake)
    index.save(path)  # same content, same file name: it must not trust the damaged file
    assert _snapshot(qa.load_index(path, model=fake)) == _snapshot(index)


# --- SIGKILL in the middle of saving ----------------------------------------------

WORDS = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon",
]  # fmt: skip

# Loads two indexes and saves them into one folder, one after the other, for ever,
# saying when it starts writing each file and which save completed.
CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import qa
    from qa import store
    from tests.conftest import FakeEncoder

    target, sources = sys.argv[2], sys.argv[3:]
    indexes = [qa.load_index(s, model=FakeEncoder(), cache=False) for s in sources]
    write = store._atomic_write

    def announced(file, data):
        print("write", file.name, flush=True)
        write(file, data)

    store._atomic_write = announced
    print("ready", flush=True)
    n = 0
    while True:
        indexes[n % 2].save(target)
        print(f"saved {n % 2}", flush=True)
        n += 1
    """
)


def _corpus(n: int) -> list[qa.Document]:
    return [
        qa.Document(
            f"d{i:05d}",
            "\n\n".join(
                " ".join(f"{WORDS[(i * 7 + j * 3 + k) % 20]}{(i + k) % 97}" for k in range(12))
                + "."
                for j in range(8)
            ),
            f"Article {i}",
        )
        for i in range(n)
    ]


def test_a_save_killed_at_random_points_leaves_a_complete_index(tmp_path: Path) -> None:
    """A real process saving 4,800-passage indexes (about 4 MB) in turn, SIGKILLed
    as it starts writing a file chosen at random (a data file, the manifest, in the
    first or a later save): the folder always holds one of the two complete indexes,
    verified, and the next save clears what the killed one left."""
    fake = FakeEncoder()
    first = qa.build_index(_corpus(600), tmp_path / "a", model=fake, cache=False)
    second = first.update([qa.Document("d00007", "Changed text here.", "Seven")]).remove(
        [f"d{i:05d}" for i in range(100, 250)]
    )
    second.save(tmp_path / "b")
    sources = [first, second]
    target = tmp_path / "target"
    rng = random.Random(20261127)
    outcomes = []
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(ROOT), str(target), str(tmp_path / "a"),
             str(tmp_path / "b")],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        lines, kill_at = [], rng.randint(1, 24)  # a save writes 10 files
        while sum(line.startswith("write") for line in lines) < kill_at:
            lines.append(child.stdout.readline())
            assert lines[-1], "the saving process stopped by itself"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        lines += child.stdout.read().splitlines()
        child.stdout.close()
        done = [line.split()[1] for line in lines if line.startswith("saved")]
        if not (target / "manifest.json").exists():
            outcomes.append("none yet")  # killed during the very first save
            assert not done
            continue
        loaded = qa.load_index(target, model=fake, cache=False)
        which = [i for i, s in enumerate(sources) if list(s.documents) == list(loaded.documents)]
        assert len(which) == 1
        # the last save reported, or the next one if killed between its manifest and print
        if done:
            assert which[0] in (int(done[-1]), 1 - int(done[-1]))
        np.testing.assert_array_equal(loaded.keys, sources[which[0]].keys)
        assert loaded.passages == sources[which[0]].passages
        report = verify(target, model=fake, sample=16)
        assert report.ok, report.problems
        outcomes.append(f"killed at write {kill_at}: index {which[0]}, {report.notes}")
    # the next save cleans up whatever the killed ones left
    first.save(target)
    assert store.leftovers(target) == []
    assert verify(target, model=fake).ok
    assert len(outcomes) == 3, outcomes


def test_a_folder_left_by_a_killed_first_save_is_written_over(
    tmp_path: Path, fake: FakeEncoder
) -> None:
    """No manifest yet, only data and temporary files: not somebody else's folder."""
    path = tmp_path / "idx"
    path.mkdir()
    (path / "vectors-0123456789abcdef.npy").write_bytes(b"\x93NUMPY half")
    (path / ".passages-fedcba9876543210.jsonl.x1y2.tmp").write_bytes(b'{"key": 0')
    with pytest.raises(qa.IndexNotFoundError, match="no manifest.json"):
        qa.load_index(path, model=fake)
    index = qa.build_index(TINY, path, model=fake)
    assert _snapshot(qa.load_index(path, model=fake)) == _snapshot(index)
    assert store.leftovers(path) == [] and len(list(path.iterdir())) == 13
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(qa.IndexNotFoundError, match="refusing to write"):
        qa.build_index(TINY, tmp_path / "mine", model=fake)
