"""Index lifecycle: update, remove, sync, stable keys, the embedding cache, the CLI's
incremental `index`, `verify` and `info`; a property test of random operation
sequences against a rebuild from scratch."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qa
from embeddings import CachedEncoder, EmbeddingCache
from embeddings.cache import ENV
from qa.answers import sentence_bounds
from qa.cli import main
from qa.verify import verify

from .conftest import TINY, FakeEncoder

QUESTIONS = ["cats purr", "Danube Vienna", "Moon Apollo 1969", "sleep", "Black Sea felines"]


def _results(index: qa.Index, question: str, mode: str) -> list[dict]:
    return [h.to_dict() for h in index.search(question, k=10, mode=mode)]


def assert_same_index(a: qa.Index, b: qa.Index) -> None:
    """Same passages, vectors, sentence vectors, BM25, and the same search results
    in every mode (ids, order, scores, answers, also_in)."""
    assert list(a.documents.items()) == list(b.documents.items())
    assert a.passages == b.passages
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)
    if a.sentence_vectors is None or b.sentence_vectors is None:
        assert a.sentence_vectors is b.sentence_vectors is None
    else:
        np.testing.assert_allclose(a.sentence_vectors, b.sentence_vectors, atol=1e-6)
    for question in QUESTIONS:
        for mode in qa.MODES:
            got, want = _results(a, question, mode), _results(b, question, mode)
            assert [h["id"] for h in got] == [h["id"] for h in want], (question, mode)
            assert [h["score"] for h in got] == pytest.approx([h["score"] for h in want], abs=1e-5)
            for h in got + want:
                h.pop("score")
            assert got == want


def test_update_replaces_a_changed_article_and_keeps_other_keys(
    tmp_path: Path, fake: FakeEncoder
) -> None:
    index = qa.build_index(TINY, tmp_path / "idx", model=fake)
    keys_of = {p.id: int(k) for p, k in zip(index.passages, index.keys, strict=True)}
    edited = qa.Document(
        "rivers", "The Rhine flows through Basel. It reaches the North Sea.", "Rivers"
    )
    updated = index.update([edited])
    assert updated.changes is not None
    assert (updated.changes.updated, updated.changes.added, updated.changes.unchanged) == (
        ("rivers",),
        (),
        0,
    )
    assert list(updated.documents) == ["cats", "rivers", "space"]  # it keeps its place
    assert updated.search("Rhine Basel", k=1)[0].doc_id == "rivers"
    assert all("Danube" not in p.text for p in updated.passages)
    for p, key in zip(updated.passages, updated.keys, strict=True):
        if p.doc_id == "rivers":  # new passages: new keys, never an old one
            assert key >= index.next_key
        else:
            assert key == keys_of[p.id]
    assert updated.next_key == index.next_key + sum(p.doc_id == "rivers" for p in updated.passages)
    # the old index is untouched and still searches its own articles
    assert index.search("Danube Vienna", k=1)[0].doc_id == "rivers"
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    np.testing.assert_array_equal(loaded.keys, updated.keys)
    assert loaded.next_key == updated.next_key
    assert_same_index(loaded, updated)
    assert_same_index(updated, qa.build_index([TINY[0], edited, TINY[2]], model=fake))


def test_update_of_unchanged_articles_embeds_nothing(tmp_path: Path) -> None:
    fake = FakeEncoder()
    index = qa.build_index(TINY, tmp_path / "idx", model=fake, cache=False)
    fake.calls = 0
    same = index.update(TINY)
    assert fake.calls == 0
    assert same.changes == qa.Changes(unchanged=3, seconds=same.changes.seconds)
    assert not same.changes
    np.testing.assert_array_equal(same.keys, index.keys)
    new = qa.Document("lakes", "Lake Geneva lies between France and Switzerland.", "Lakes")
    grown = index.update([*TINY, new])
    assert grown.changes is not None and grown.changes.added == ("lakes",)
    assert grown.changes.unchanged == 3
    assert fake.calls == grown.changes.encoded > 0  # only the new article's texts


def test_remove(tmp_path: Path, fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, tmp_path / "idx", model=fake)
    smaller = index.remove("rivers")
    assert list(smaller.documents) == ["cats", "space"]
    assert smaller.changes is not None and smaller.changes.removed == ("rivers",)
    assert all(h.doc_id != "rivers" for h in smaller.search("Danube Vienna Black Sea", k=10))
    assert smaller.next_key == index.next_key  # keys of removed passages are not handed out
    kept = index.keys[[p.doc_id != "rivers" for p in index.passages]]
    np.testing.assert_array_equal(smaller.keys, kept)
    assert_same_index(qa.load_index(tmp_path / "idx", model=fake), smaller)
    assert_same_index(smaller, qa.build_index([TINY[0], TINY[2]], model=fake))
    again = smaller.add([TINY[1]])
    assert min(again.keys[[p.doc_id == "rivers" for p in again.passages]]) >= index.next_key


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["nope"], "article id 'nope' is not in the index, nothing was removed"),
        (["cats", "nope"], "article id 'nope' is not in the index"),
        ([3], "article id 3 is not in the index"),
        (["cats", "rivers", "space"], "would leave the index without articles"),
    ],
)
def test_bad_remove_changes_nothing(
    tmp_path: Path, fake: FakeEncoder, ids: list, message: str
) -> None:
    index = qa.build_index(TINY, tmp_path / "idx", model=fake)
    before = {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()}
    with pytest.raises(qa.InvalidInputError, match=message):
        index.remove(ids)
    assert {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()} == before
    assert len(index.documents) == 3


def test_sync_takes_the_given_articles_in_their_order(fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, model=fake)
    new = qa.Document("lakes", "Lake Geneva lies between France and Switzerland.", "Lakes")
    edited = qa.Document("cats", "Cats hunt mice at night. They purr.", "Cats")
    synced = index.sync([new, TINY[2], edited])
    c = synced.changes
    assert c is not None
    assert (c.added, c.updated, c.removed, c.unchanged) == (("lakes",), ("cats",), ("rivers",), 1)
    assert_same_index(synced, qa.build_index([new, TINY[2], edited], model=fake))


def test_source_change_only_updates_the_record(fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, model=fake)
    moved = qa.Document("cats", TINY[0].text, "Cats", source="pets/cats.txt")
    updated = index.update([moved])
    assert updated.documents["cats"].source == "pets/cats.txt"
    np.testing.assert_array_equal(updated.keys, index.keys)
    assert updated.changes is not None and updated.changes.passages == 0


def test_keys_are_saved_in_the_passage_table(tmp_path: Path, fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, tmp_path / "idx", model=fake).remove("cats")
    table = np.load(next((tmp_path / "idx").glob("passages-*.npy")), allow_pickle=False)
    assert table["key"].tolist() == index.keys.tolist()
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert index.keys.tolist() == [1, 2]  # "cats" held key 0
    assert manifest["next_key"] == index.next_key == 3 and manifest["format_version"] == 4


def test_old_format_version_says_rebuild(tmp_path: Path, fake: FakeEncoder) -> None:
    qa.build_index(TINY, tmp_path / "idx", model=fake)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    manifest["format_version"] = 3
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(qa.IndexFormatError, match="version 3, this semantic-qa reads version 4: "
                       "rebuild it with: semantic-qa index"):  # fmt: skip
        qa.load_index(tmp_path / "idx", model=fake)


def test_index_command_rebuilds_a_damaged_format_3_index_keeping_its_keys(
    tmp_path: Path, cli_fake: FakeEncoder, capsys
) -> None:
    """A format 3 index that cannot be converted (its manifest names no passages file)
    is rebuilt, handing out keys after the old ones, and the old version's files go."""
    articles, path = tmp_path / "articles", tmp_path / "idx"
    _write(articles, TINY)
    args = ["index", str(articles), "--out", str(path), "--model", "fake-bow"]
    assert main(args) == 0
    manifest = json.loads((path / "manifest.json").read_text())
    for part in ("passages", "passage-texts", "passage-ids"):
        (path / manifest["files"].pop(part)["name"]).unlink()
    (path / "passages-0123456789abcdef.jsonl").write_text('{"key": 0}\n')
    manifest.update(format_version=3, next_key=40)
    (path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(args) == 0
    assert "format version 3, this semantic-qa reads version 4" in capsys.readouterr().out
    index = qa.load_index(path, model=cli_fake)
    assert index.keys.tolist() == list(range(40, 40 + len(index)))
    assert not list(path.glob("passages-*.jsonl")) and verify(path, model=cli_fake).ok


def _as_format_3(path: Path) -> None:
    """Rewrite the index at `path` as format 3 wrote it: the passages as JSON Lines
    (key, id, doc_id, start, end, text), the other files as they are."""
    manifest = json.loads((path / "manifest.json").read_text())
    index_passages = [json.loads(json.dumps(p.__dict__)) for p in qa.load_index(path).passages]
    table = np.load(path / manifest["files"]["passages"]["name"], allow_pickle=False)
    for part in ("passages", "passage-texts", "passage-ids"):
        (path / manifest["files"].pop(part)["name"]).unlink()
    rows = [{"key": int(k), **p} for k, p in zip(table["key"], index_passages, strict=True)]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    digest = hashlib.sha256(data).hexdigest()
    name = f"passages-{digest[:16]}.jsonl"
    (path / name).write_bytes(data)
    manifest["files"]["passages"] = {"name": name, "sha256": digest, "bytes": len(data)}
    manifest["format_version"] = 3
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_index_command_converts_a_format_3_index_without_embedding(
    tmp_path: Path, cli_fake: FakeEncoder, capsys
) -> None:
    """`semantic-qa index` (so `make run`) over an index of format version 3 rewrites
    it in format 4 in place: same keys, same answers, nothing encoded again."""
    articles, path = tmp_path / "articles", tmp_path / "idx"
    _write(articles, TINY)
    args = ["index", str(articles), "--out", str(path), "--model", "fake-bow"]
    assert main([*args, "--no-cache"]) == 0
    gone = f"{TINY[1].id}.md"
    before = qa.load_index(path, model=cli_fake).remove(gone)  # keys 0, 2; next_key 3
    _as_format_3(path)
    with pytest.raises(qa.IndexFormatError, match="version 3, this semantic-qa reads version 4"):
        qa.load_index(path, model=cli_fake)
    (articles / gone).unlink()
    capsys.readouterr()
    assert main([*args, "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "converted from index format 3 to 4 (nothing embedded again)" in printed
    assert "up to date (2 documents)" in printed
    after = qa.load_index(path, model=cli_fake)
    assert after.keys.tolist() == before.keys.tolist() and after.next_key == before.next_key
    assert after.passages == before.passages
    np.testing.assert_array_equal(after.vectors, before.vectors)
    assert after.search("Where do cats sleep?", k=2) == before.search("Where do cats sleep?", k=2)
    assert not list(path.glob("passages-*.jsonl")) and verify(path, model=cli_fake).ok


def _table_with(path: Path, edit) -> bytes:
    table = np.load(next(path.glob("passages-*.npy")), allow_pickle=False)
    table = edit(table.copy())
    buf = io.BytesIO()
    np.save(buf, table, allow_pickle=False)
    return buf.getvalue()


def _set_key(row: int, key: int):
    def edit(table: np.ndarray) -> np.ndarray:
        table["key"][row] = key
        return table

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: _set_key(1, int(t["key"][0]))(t), "1 passage keys are used twice"),
        (_set_key(0, 99), "outside 0..2"),
        (lambda t: t[["doc", "start", "end", "text_end", "id_end", "hash"]], "passage table are"),
    ],
)
def test_bad_keys_do_not_load(tmp_path: Path, fake: FakeEncoder, edit, message: str) -> None:
    path = tmp_path / "idx"
    qa.build_index(TINY, path, model=fake)
    _replace_part(path, "passages", _table_with(path, edit))
    with pytest.raises(qa.IndexCorruptError, match=message):
        qa.load_index(path, model=fake)
    assert not verify(path, model=fake).ok


def _replace_part(path: Path, part: str, data: bytes) -> None:
    """Swap one data file for `data` with a consistent checksum (a bug, not damage)."""
    manifest = json.loads((path / "manifest.json").read_text())
    entry = manifest["files"][part]
    (path / entry["name"]).write_bytes(data)
    entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (path / "manifest.json").write_text(json.dumps(manifest))


# --- embedding cache -------------------------------------------------------------


def test_second_build_of_the_same_text_never_encodes(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    first, second = FakeEncoder(), FakeEncoder()
    built = qa.build_index(TINY, model=first, cache=cache)
    encoded = first.calls
    assert encoded > 0 and cache.count() == encoded
    again = qa.build_index(TINY, tmp_path / "idx", model=second, cache=cache)
    assert second.calls == 0  # passages and sentences all from the cache
    assert again.changes is not None and again.changes.encoded == 0
    assert again.changes.cached == encoded
    # another model (or dimension) is another cache entry
    other = FakeEncoder(dimension=32)
    qa.build_index(TINY, model=other, cache=cache)
    assert other.calls == encoded
    uncached = FakeEncoder()
    qa.build_index(TINY, model=uncached, cache=False)
    assert uncached.calls == encoded
    assert_same_index(again, built)


def test_cached_encoder_encodes_each_new_text_once(tmp_path: Path) -> None:
    fake = FakeEncoder()
    cached = CachedEncoder(fake, EmbeddingCache(tmp_path))
    texts = ["Cats purr.", "Dogs bark.", "Cats purr."]
    vectors = cached.encode_documents(texts)
    np.testing.assert_array_equal(vectors, fake.encode_documents(texts))
    assert (cached.encoded, cached.reused, fake.calls) == (2, 0, 5)  # "Cats purr." once
    np.testing.assert_array_equal(cached.encode_documents(["Dogs bark."]), vectors[1:2])
    assert (cached.encoded, cached.reused, fake.calls) == (2, 1, 5)


def test_default_cache_location_and_off(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "here"))
    cache = EmbeddingCache.default()
    assert cache is not None and cache.file == tmp_path / "here" / "embeddings.sqlite3"
    for off in ["off", "OFF", "0", "none"]:
        monkeypatch.setenv(ENV, off)
        assert EmbeddingCache.default() is None
    monkeypatch.delenv(ENV)
    default = EmbeddingCache.default()
    assert default is not None and default.folder == Path.home() / ".cache/semantic-qa/embeddings"


def test_saved_indexes_use_the_default_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "cache"))
    qa.build_index(TINY, tmp_path / "idx", model=FakeEncoder())
    assert (tmp_path / "cache" / "embeddings.sqlite3").is_file()
    fake = FakeEncoder()
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    loaded.update([qa.Document("cats", "Cats are small felines.", "Cats")])
    assert fake.calls == 0  # both the passage and its one sentence were seen before
    memory = FakeEncoder()
    qa.build_index(TINY, model=memory)  # in memory (evaluation, benchmarks): no cache
    assert memory.calls > 0


def test_a_broken_cache_is_only_a_warning(tmp_path: Path, caplog) -> None:
    (tmp_path / "embeddings.sqlite3").write_bytes(b"this is not a database" * 100)
    fake = FakeEncoder()
    with caplog.at_level(logging.WARNING):
        index = qa.build_index(TINY, model=fake, cache=EmbeddingCache(tmp_path))
    assert "embedding cache" in caplog.text and "unusable" in caplog.text
    assert_same_index(index, qa.build_index(TINY, model=FakeEncoder(), cache=False))


# --- the command line ---------------------------------------------------------------


@pytest.fixture
def cli_fake(monkeypatch) -> FakeEncoder:
    """The CLI with the fake encoder as model 'fake-bow'."""
    fake = FakeEncoder()
    monkeypatch.setattr("qa.index.load_encoder", lambda name: fake)
    return fake


def _write(folder: Path, docs: list[qa.Document]) -> None:
    folder.mkdir(exist_ok=True)
    for d in docs:
        (folder / f"{d.id}.md").write_text(f"# {d.title}\n\n{d.text}\n", "utf-8")


def test_cli_index_syncs_an_existing_index(tmp_path: Path, cli_fake: FakeEncoder, capsys) -> None:
    articles, out = tmp_path / "articles", tmp_path / "idx"
    _write(articles, TINY)
    args = ["index", str(articles), "--out", str(out), "--model", "fake-bow", "--no-cache"]
    assert main(args) == 0
    assert "3 added, 0 updated, 0 removed, 0 unchanged documents" in capsys.readouterr().out
    (articles / "space.md").unlink()
    (articles / "rivers.md").write_text("# Rivers\n\nThe Rhine flows past Basel.\n")
    _write(articles, [qa.Document("lakes", "Lake Geneva is deep.", "Lakes")])
    cli_fake.calls = 0
    assert main(args) == 0
    out_text = capsys.readouterr().out
    assert out_text.startswith("indexed 3 documents, ")
    assert "1 added, 1 updated, 1 removed, 1 unchanged documents; 2 passages embedded" in out_text
    index = qa.load_index(out, model=cli_fake)
    assert list(index.documents) == ["cats.md", "lakes.md", "rivers.md"]
    # only the new and the changed article were embedded (2 passages, 2 sentences)
    fresh = [p for p in index.passages if p.doc_id in ("lakes.md", "rivers.md")]
    sentences = sum(len(sentence_bounds(p.text)) for p in fresh)
    assert cli_fake.calls == len(fresh) + sentences == 2 + sentences
    assert_same_index(index, qa.build_index([articles], model=FakeEncoder(), cache=False))
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == f"{out}: up to date (3 documents)"
    assert main([*args, "--force"]) == 0
    assert "3 added, 0 updated" in capsys.readouterr().out
    assert main([*args, "--target-tokens", "20"]) == 0
    assert (
        "built with target_tokens=192, not target_tokens=20: rebuilding it"
        in capsys.readouterr().out
    )


def test_cli_index_rebuilds_an_old_or_broken_index(
    tmp_path: Path, cli_fake: FakeEncoder, capsys
) -> None:
    articles, out = tmp_path / "articles", tmp_path / "idx"
    _write(articles, TINY)
    args = ["index", str(articles), "--out", str(out), "--model", "fake-bow"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    (articles / "cats.md").write_text("# Cats\n\nCats nap.\n")
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "cannot be updated (" in printed and "format version 2" in printed
    assert "rebuilding it" in printed
    assert verify(out, model=cli_fake).ok


def test_cli_verify_and_info(tmp_path: Path, cli_fake: FakeEncoder, capsys) -> None:
    articles, out = tmp_path / "articles", tmp_path / "idx"
    _write(articles, TINY)
    assert main(["index", str(articles), "--out", str(out), "--model", "fake-bow"]) == 0
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"OK {out}: 3 documents, 3 passages, 10 sentence vectors")
    assert "passages match the text of 3 articles (0 not found, 0 changed)" in printed
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["documents"], info["passages"], info["next_key"]) == (3, 3, 3)
    assert info["model"] == "fake-bow" and info["format_version"] == 4
    assert main(["info", str(out)]) == 0
    assert "next_key        3" in capsys.readouterr().out
    # an edited article is a note, not a problem
    (articles / "cats.md").write_text("# Cats\n\nCats nap all day.\n")
    assert main(["verify", str(out), "--articles", str(articles)]) == 0
    assert "note: 1 article(s) changed since indexing (e.g. 'cats.md')" in capsys.readouterr().out
    # vectors of the wrong passages: re-encoding finds them
    vectors = np.load(next(out.glob("vectors-*.npy")))
    buf = io.BytesIO()
    np.save(buf, vectors[::-1].copy())
    _replace_part(out, "vectors", buf.getvalue())
    assert main(["verify", str(out)]) == 1
    printed = capsys.readouterr().out
    assert printed.startswith(f"FAILED {out}: 1 problem(s)")
    assert "sampled passage vectors differ from their text re-encoded with 'fake-bow'" in printed
    assert main(["verify", str(tmp_path / "nothing")]) == 1
    assert "no index at" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "nothing")]) == 1


def test_verify_finds_each_kind_of_damage(tmp_path: Path, fake: FakeEncoder) -> None:
    path = tmp_path / "idx"
    index = qa.build_index(TINY, path, model=fake)
    assert verify(path, model=fake, articles=[]).ok
    # not normalized vectors (saved with a consistent checksum: a bug, not damage)
    index.vectors = index.vectors * 2
    index.save(path)
    assert any("not unit length" in p for p in verify(path, model=fake).problems)
    # passages whose text is not the article's at their offsets
    bad = qa.build_index(TINY, model=fake)
    bad.passages = [
        p.__class__(p.id, p.doc_id, p.start, p.end, p.text.upper()) for p in bad.passages
    ]
    bad.save(path)
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in TINY)
    )
    problems = verify(path, model=fake, articles=[docs]).problems
    assert any("differ from their article's text" in p for p in problems)
    # a truncated file: every damaged file is listed
    for f in [*path.glob("vectors-*"), *path.glob("documents-*")]:
        f.write_bytes(f.read_bytes()[:-5])
    problems = verify(path, model=fake).problems
    assert len(problems) == 2 and all("truncated or edited" in p for p in problems)


# --- the property: any sequence of operations equals a rebuild ---------------------

WORDS = [
    "cat",
    "dog",
    "moon",
    "river",
    "sea",
    "sun",
    "tree",
    "rock",
    "bird",
    "fish",
    "star",
    "cloud",
]
VARIANTS = {
    doc_id: [
        " ".join(f"{WORDS[(i + j + v) % len(WORDS)].capitalize()} sees {WORDS[(i * 3 + v) % 12]}."
                 for j in range(2 + v)) + ("\n\nShared line about the sea." if v == 1 else "")
        for v in range(3)
    ]
    for i, doc_id in enumerate(["a", "b", "c", "d", "e"])
}  # fmt: skip

_doc_ids = st.sampled_from(sorted(VARIANTS))
_variant = st.integers(0, 2)
_ops = st.one_of(
    st.tuples(st.just("add"), _doc_ids, _variant),
    st.tuples(st.just("update"), _doc_ids, _variant),
    st.tuples(st.just("remove"), _doc_ids, _variant),
    st.tuples(st.just("sync"), st.lists(st.tuples(_doc_ids, _variant), min_size=1, max_size=5)),
)


def _doc(doc_id: str, variant: int) -> qa.Document:
    return qa.Document(doc_id, VARIANTS[doc_id][variant], f"Article {doc_id}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.lists(st.tuples(_doc_ids, _variant), min_size=1, max_size=5),
    ops=st.lists(_ops, max_size=6),
)
def test_any_operation_sequence_equals_a_rebuild(start, ops) -> None:
    fake = FakeEncoder()
    articles = {i: _doc(i, v) for i, v in dict(start).items()}
    index = qa.build_index(list(articles.values()), model=fake)
    handed_out = set(index.keys.tolist())
    for op in ops:
        before = index
        if op[0] == "sync":
            wanted = {i: _doc(i, v) for i, v in dict(op[1]).items()}
            index, articles = index.sync(list(wanted.values())), wanted
        elif op[0] == "add" and op[1] in articles:
            with pytest.raises(qa.DuplicateIdError):
                index.add([_doc(op[1], op[2])])
        elif op[0] == "add":
            articles[op[1]] = _doc(op[1], op[2])
            index = index.add([articles[op[1]]])
        elif op[0] == "update":
            articles[op[1]] = _doc(op[1], op[2])  # keeps its place when already there
            index = index.update([articles[op[1]]])
        elif op[1] not in articles:
            with pytest.raises(qa.InvalidInputError, match="not in the index"):
                index.remove([op[1]])
        elif len(articles) == 1:
            with pytest.raises(qa.InvalidInputError, match="without articles"):
                index.remove([op[1]])
        else:
            del articles[op[1]]
            index = index.remove([op[1]])
        # keys: kept passages keep theirs, new ones are fresh, none ever comes back
        old = dict(zip(before.keys.tolist(), before.passages, strict=True))
        for key, p in zip(index.keys.tolist(), index.passages, strict=True):
            assert old.get(key, p) == p
            assert key in old or key not in handed_out
        handed_out |= set(index.keys.tolist())
        assert index.next_key >= max(handed_out) + 1
    assert_same_index(index, qa.build_index(list(articles.values()), model=FakeEncoder()))


def test_a_rebuild_over_an_index_hands_out_new_keys(tmp_path: Path, fake: FakeEncoder) -> None:
    first = qa.build_index(TINY, tmp_path / "idx", model=fake)
    again = qa.build_index(TINY, tmp_path / "idx", model=fake)
    assert again.keys.tolist() == [3, 4, 5] and again.next_key == 6
    assert set(first.keys.tolist()).isdisjoint(again.keys.tolist())
    assert qa.build_index(TINY, tmp_path / "other", model=fake).keys.tolist() == [0, 1, 2]


def test_a_change_never_undoes_what_another_process_saved(
    tmp_path: Path, fake: FakeEncoder
) -> None:
    path = tmp_path / "idx"
    qa.build_index(TINY, path, model=fake)
    server, cli = qa.load_index(path, model=fake), qa.load_index(path, model=fake)
    edited = qa.Document("rivers", "The Rhine flows through Basel.", "Rivers")
    cli.update([edited])
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    new = qa.Document("lakes", "Lake Geneva is deep.", "Lakes")
    with pytest.raises(
        qa.IndexWriteError, match="another process saved it since this one was loaded"
    ):
        server.add([new])
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    grown = qa.load_index(path, model=fake).add([new])  # loaded again, the change goes through
    assert grown.search("Rhine Basel", k=1)[0].doc_id == "rivers"
    assert list(qa.load_index(path, model=fake).documents) == ["cats", "rivers", "space", "lakes"]
    server.save(path)  # an explicit save is the caller's choice: it overwrites
    assert "lakes" not in qa.load_index(path, model=fake).documents
