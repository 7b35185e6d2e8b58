"""The `semantic-qa` command: index, ask, serve. Same results as the Python API.

semantic-qa index data/articles --out data/index
semantic-qa ask "When did Kazakhstan chair the OSCE?" --k 3
semantic-qa ask --questions questions.jsonl --k 20 --json
semantic-qa serve --port 7860
semantic-qa eval --articles articles.jsonl --questions questions.jsonl --baselines
semantic-qa verify data/index
semantic-qa info data/index --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import IndexCorruptError, IndexWriteError, InvalidInputError, QAError
from .hits import page_label

log = logging.getLogger("qa")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed
        return int(exit_.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("sentence_transformers", "httpx", "transformers", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        return int(args.run(args) or 0)
    except QAError as err:
        print(f"semantic-qa: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("semantic-qa: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # a Milvus server that fails mid-way (gone, out of memory, refusing a request):
        # one line, like any other error; reruns resume (semantic-qa migrate)
        if not type(err).__module__.startswith("pymilvus"):
            raise
        print(f"semantic-qa: error: Milvus: {err}", file=sys.stderr)
        return 1


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are user errors too: one line on stderr, exit code 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from .search import default_index_path

    default_index = str(default_index_path())
    parser = _Parser(prog="semantic-qa", description="Ask questions of your own articles.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("index", help="build (or refresh) an index of articles")
    p.add_argument(
        "paths",
        nargs="+",
        help="article files or folders (.txt .md .html .jsonl .pdf .docx)",
    )
    p.add_argument("--out", default=default_index, help=f"index folder (default {default_index})")
    p.add_argument("--model", default=None, help="packaged model name (default all-MiniLM-L6-v2)")
    _encoder_options(p)
    p.add_argument("--target-tokens", type=int, default=None, help="passage size in tokens")
    p.add_argument("--overlap-tokens", type=int, default=None, help="overlap between passages")
    p.add_argument("--skip-bad", action="store_true", help="warn about bad files and skip them")
    p.add_argument("--force", action="store_true", help="rebuild even if the index is current")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use the embedding cache ($SEMANTIC_QA_CACHE)",
    )
    _store_options(p, "--store", "keep the passage vectors in Milvus: ")
    p.set_defaults(run=_cmd_index)

    p = sub.add_parser("migrate", help="move an index's vectors into Milvus (no re-encoding)")
    p.add_argument("--from", dest="source", required=True, help="the index folder")
    _store_options(p, "--to", "")
    p.set_defaults(run=_cmd_migrate)

    p = sub.add_parser("verify", help="check an index end to end")
    p.add_argument("index", nargs="?", default=default_index, help="index folder")
    p.add_argument(
        "--articles",
        nargs="+",
        default=None,
        help="the articles now (default: their recorded files)",
    )
    p.add_argument("--sample", type=int, default=32, help="passages re-encoded (default 32)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_cmd_verify)

    p = sub.add_parser("info", help="what an index holds (from its manifest)")
    p.add_argument("index", nargs="?", default=default_index, help="index folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser("ask", help="ask a question (or a file of questions)")
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--questions", type=Path, help="JSON Lines file of {id, question}")
    p.add_argument("--index", default=default_index, help=f"index folder (default {default_index})")
    p.add_argument(
        "--k", type=int, default=None, help="passages to return (default 5, 20 with --questions)"
    )
    p.add_argument("--json", action="store_true", help="print JSON (Hit.to_dict())")
    p.add_argument("--mode", default=None, help="hybrid (default), dense or lexical")
    p.add_argument(
        "--ranker",
        default=None,
        help="hybrid mode's ranking: learned (the index's default) or fusion (the fixed "
        "fusion of dense and BM25 scores)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="only articles whose doc_id, title, source or metadata FIELD is VALUE",
    )
    p.set_defaults(run=_cmd_ask)

    p = sub.add_parser("eval", help="measure retrieval on SQuAD-style questions")
    p.add_argument("--articles", type=Path, required=True, help="articles.jsonl (id, text)")
    p.add_argument(
        "--questions", type=Path, required=True, help="questions.jsonl (id, question, answers)"
    )
    p.add_argument("--k", type=int, default=20, help="passages per question (default 20)")
    p.add_argument("--mode", default=None, help="dense, lexical or hybrid (default hybrid)")
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also the fixed fusion (hybrid-fusion), BM25 alone and dense alone",
    )
    p.add_argument("--model", default=None, help="packaged model name (default all-MiniLM-L6-v2)")
    _encoder_options(p)
    p.add_argument("--latency-questions", type=int, default=200, help="questions timed one by one")
    p.add_argument("--run-file", type=Path, help="write the hits (squad_bench.py format)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_cmd_eval)

    p = sub.add_parser("serve", help="serve the web form")
    p.add_argument("--index", default=default_index, help=f"index folder (default {default_index})")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=10.0,
        help="largest article file the form accepts, in MB (default 10)",
    )
    p.add_argument(
        "--max-upload-files", type=int, default=20, help="files one upload may hold (default 20)"
    )
    p.add_argument(
        "--auth",
        default=None,
        metavar="USER:PASSWORD",
        help="ask for this user name and password (default: $SEMANTIC_QA_AUTH; none)",
    )
    p.add_argument(
        "--upload-dir", default=None, help="where uploads are kept (default: beside the index)"
    )
    p.set_defaults(run=_cmd_serve)
    return parser


def _store_options(p: argparse.ArgumentParser, flag: str, what: str) -> None:
    p.add_argument(
        flag,
        dest="store",
        required=flag == "--to",
        default=None,
        metavar="URI",
        help=f"{what}milvus://HOST:19530 or a milvus-lite file (NAME.db); the index folder "
        "records it (token: $SEMANTIC_QA_MILVUS_TOKEN)",
    )
    p.add_argument(
        "--collection",
        default=None,
        help="Milvus collection (default: named after the index folder)",
    )


def _encoder_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder",
        default=None,
        help="onnx (default: ONNX Runtime int8, ~3x torch on a CPU), torch or onnx-fp32; "
        "an index remembers its encoder and embeds questions with the same",
    )
    p.add_argument("--device", default=None, help="torch device: cpu, cuda or auto (default)")


def _use_encoder_options(args: argparse.Namespace) -> None:
    """--encoder becomes part of the model name ("all-MiniLM-L6-v2@onnx-int8"), which is
    what an index records; --device is the default for every torch encoder loaded."""
    from embeddings import encoder_name, split_name

    args.model = encoder_name(args.model, args.encoder)
    if args.device is not None:
        backend = split_name(args.model or "")[1]
        if backend != "torch" and args.device not in ("auto", "cpu"):
            raise InvalidInputError(
                f"--encoder {args.encoder} runs on the CPU only, not {args.device!r}: "
                "use --encoder torch with --device cuda"
            )
        os.environ["SEMANTIC_QA_DEVICE"] = args.device


def _cmd_index(args: argparse.Namespace) -> int:
    """Build the index, or bring an existing one of the same model and settings up to
    date: only new and changed articles are embedded, deleted ones are removed."""
    from .documents import load_documents
    from .index import build_index, load_index, migrate
    from .passages import SplitSettings

    _use_encoder_options(args)

    settings = SplitSettings(
        **{
            key: value
            for key, value in (
                ("target_tokens", args.target_tokens),
                ("overlap_tokens", args.overlap_tokens),
            )
            if value is not None
        }
    )
    started = time.perf_counter()
    out, cache = Path(args.out), False if args.no_cache else None
    docs = load_documents(args.paths, skip_bad=args.skip_bad)
    if not args.force and _upgrade(out):
        print(f"{args.out}: converted from index format 3 to 4 (nothing embedded again)")
    # --store names where the vectors go; without it an index keeps the store it has
    wanted, recorded = _wanted_store(args, out), _recorded_store(out)
    moving = wanted is not None and wanted != recorded
    if not args.force and not moving and _is_current(out, docs, args.model, settings):
        print(f"{args.out}: up to date ({len(docs)} documents)")
        return 0
    where = wanted or recorded
    why = "" if args.force else _why_rebuild(out, args.model, settings)
    index = None
    if why is None:
        try:
            if moving:
                assert wanted is not None
                print(f"{args.out}: moving its vectors to {wanted['uri']} ({wanted['collection']})")
                migrate(out, wanted["uri"], collection=wanted["collection"])
            index = load_index(out, model=args.model, cache=cache).sync(docs)
        except IndexWriteError:
            raise
        except QAError as err:  # an index that does not load: the articles are all we need
            why = f"cannot be updated ({str(err).split(': rebuild')[0]})"
    if index is None:
        if why:
            print(f"{args.out}: {why}: rebuilding it")
        index = build_index(
            docs,
            out,
            model=args.model,
            settings=settings,
            cache=cache,
            store=None if where is None else where["uri"],
            collection=None if where is None else where["collection"],
        )
    seconds = time.perf_counter() - started
    print(
        f"indexed {len(index.documents)} documents, {len(index)} passages "
        f"in {seconds:.1f} s -> {args.out}"
    )
    if index.changes is not None:
        c = index.changes
        print(
            f"  {len(c.added)} added, {len(c.updated)} updated, {len(c.removed)} removed, "
            f"{c.unchanged} unchanged documents; {c.passages} passages embedded (model ran "
            f"on {c.encoded} texts, {c.cached} from the cache)"
        )
    return 0


def _wanted_store(args: argparse.Namespace, out: Path) -> dict[str, str] | None:
    """Where --store and --collection put the vectors (None: not given)."""
    from .backend import location

    if args.store is None:
        if args.collection is not None:
            raise InvalidInputError("--collection goes with --store milvus://HOST:19530")
        return None
    return location(args.store, args.collection, out)


def _upgrade(out: Path) -> bool:
    """An index of the previous format at `out` rewritten in this one (see
    `store.upgrade`); False when there was none to convert."""
    from . import store

    try:
        return store.upgrade(out)
    except IndexCorruptError:  # a damaged old index: rebuilt below, as any broken one
        return False


def _recorded_store(out: Path) -> dict[str, str] | None:
    """The Milvus store the index at `out` records, if any."""
    from . import store

    try:
        recorded = store.read_manifest(out).get("store")
    except QAError:
        return None
    return recorded if isinstance(recorded, dict) else None


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Move a FAISS index's vectors into Milvus, or bring a Milvus index's collection
    back in line: stored vectors as they are, resumable."""
    from .index import migrate

    started = time.perf_counter()
    index = migrate(args.source, args.store, collection=args.collection)
    assert index.store is not None
    print(
        f"{args.source}: {len(index)} passages in Milvus {index.store.uri} collection "
        f"{index.store.collection} in {time.perf_counter() - started:.1f} s (none encoded)"
    )
    return 0


def _why_rebuild(out: Path, model: str | None, settings: Any) -> str | None:
    """Why the index at `out` cannot be brought up to date and must be built anew;
    None when it can (or "" when there is none yet)."""
    from dataclasses import asdict

    from embeddings import DEFAULT_MODEL

    from . import store

    if not (out / store.MANIFEST).exists():
        return ""
    try:
        manifest = store.read_manifest(out)
    except QAError as err:  # an old format version, a damaged manifest
        return f"cannot be updated ({str(err).split(': rebuild')[0]})"
    if manifest["model"] != (model or DEFAULT_MODEL):
        return f"built with model {manifest['model']!r}, not {model or DEFAULT_MODEL!r}"
    if manifest.get("export") != _export(model):
        return f"built with another export of {manifest['model']!r} (an earlier semantic-qa)"
    if _separate_sentences(manifest):
        return "its sentence vectors were embedded one by one (an earlier semantic-qa)"
    old, new = manifest.get("split") or {}, asdict(settings)
    if old != new:
        differ = [k for k in new if old.get(k) != new[k]]
        was = ", ".join(f"{k}={old.get(k)}" for k in differ)
        return f"built with {was}, not {', '.join(f'{k}={new[k]}' for k in differ)}"
    return None


def _is_current(out: Path, docs: list[Any], model: str | None, settings: Any) -> bool:
    """True when `out` is an index of exactly these articles, model and settings."""
    from dataclasses import asdict

    from embeddings import DEFAULT_MODEL

    from . import store

    if not (out / store.MANIFEST).exists():
        return False
    try:
        manifest = store.read_manifest(out)
        stored = store.read_documents(out)
    except QAError:
        return False
    return (
        manifest["model"] == (model or DEFAULT_MODEL)
        and manifest.get("export") == _export(model)
        and not _separate_sentences(manifest)
        and manifest.get("split") == asdict(settings)
        and {d.id: d.sha256 for d in stored.values()} == {d.id: d.sha256 for d in docs}
    )


def _export(model: str | None) -> str | None:
    """Which export of `model` this installation embeds with (ONNX: its checksum; None
    for torch), as `Index.info` records it."""
    from embeddings import DEFAULT_ENCODER, load_encoder, split_name

    name = model or DEFAULT_ENCODER
    if not split_name(name)[1].startswith("onnx"):
        return None
    return getattr(load_encoder(name), "export_id", None)


def _separate_sentences(manifest: dict[str, Any]) -> bool:
    """True for an index of a packaged model whose sentence vectors were embedded one by
    one, not pooled from their passage's run as this version does (qa.index.embed_passages):
    changes to it would mix the two."""
    from embeddings import REGISTRY, split_name

    pooled = manifest.get("sentences") is None or manifest.get("sentence_vectors") == "pooled"
    return not pooled and split_name(manifest["model"])[0] in REGISTRY


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    report = verify(args.index, articles=args.articles, sample=max(0, args.sample))
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return 0 if report.ok else 1
    f = report.facts
    if report.ok:
        print(
            f"OK {args.index}: {f['documents']} documents, {f['passages']} passages, "
            f"{f['sentences'] or 0} sentence vectors, model {f['model']}"
        )
        keys = f"{f['keys'][0]}..{f['keys'][1]}" if f["keys"] else "none"
        print(
            f"  {f['files']} files match their checksums; keys {keys} distinct, next_key "
            f"{f['next_key']}; passages match the text of {f['articles_checked']} articles "
            f"({f['articles_not_found']} not found, {f['articles_changed']} changed)"
        )
        sample = (
            f"{f['sample']} passages re-encoded: min cosine {f['min_cosine']:.4f}"
            if "sample" in f
            else "no re-encoding"
        )
        print(f"  vectors finite and unit length; BM25 matches the passages; {sample}")
    else:
        print(f"FAILED {args.index}: {len(report.problems)} problem(s)")
        for problem in report.problems:
            print(f"  - {problem}")
    for note in report.notes:
        print(f"  note: {note}")
    return 0 if report.ok else 1


def _cmd_info(args: argparse.Namespace) -> int:
    from .store import summary

    facts = summary(args.index)
    if args.json:
        print(json.dumps(facts, ensure_ascii=False, indent=2))
        return 0
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        if isinstance(value, dict):
            value = " ".join(
                f"{k}={','.join(f'{a}:{b}' for a, b in v.items()) if isinstance(v, dict) else v}"
                for k, v in value.items()
            )
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    from .index import check_mode
    from .query import check_k, check_question
    from .ranking import check_ranker
    from .search import open_index

    if (args.question is None) == (args.questions is None):
        raise InvalidInputError('give a question, or --questions FILE.jsonl: semantic-qa ask "..."')
    if args.question is not None:
        check_question(args.question)
    if args.k is not None:
        check_k(args.k)
    mode, where = check_mode(args.mode), _where(args.where)
    ranker = None if args.ranker is None else check_ranker(args.ranker)
    index = open_index(args.index)
    if args.questions is not None:
        k = 20 if args.k is None else args.k
        return _ask_batch(index, args.questions, k, mode, where, ranker)
    k = 5 if args.k is None else args.k
    hits = index.search(args.question, k=k, mode=mode, where=where, ranker=ranker)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    for hit in hits:
        title, source = _printable(hit.title), _printable(hit.source)
        place = f"{source}, {page_label(hit.pages)}," if hit.pages else source
        print(f"{hit.rank}. [{hit.score:.3f}] {title}  ({place} {hit.start}-{hit.end})")
        text = " ".join(_printable(hit.text).split())
        print(textwrap.indent(textwrap.fill(text, 88), "   "))
        print()
    return 0


# Terminal escape sequences (CSI; OSC, DCS and the other strings up to their end;
# any other ESC pair), then any control character left: C0 but tab and newline,
# DEL, C1, and the bidirectional overrides that make a line read differently from
# what it holds.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _printable(text: str) -> str:
    """Article text as it may go to a terminal: an article could otherwise move the
    cursor, retitle the window, rewrite what was printed before it or (in some
    terminals) run commands through escape sequences. --json output is left exact."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def _where(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    where: dict[str, str] = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field.strip():
            raise InvalidInputError(f"--where takes FIELD=VALUE, e.g. source=news.md; got {pair!r}")
        where[field.strip()] = value
    return where


def _ask_batch(
    index: Any,
    path: Path,
    k: int,
    mode: str,
    where: dict[str, str] | None,
    ranker: str | None,
) -> int:
    from .query import check_question

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot read questions ({err})") from err
    rows = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid, question = row["id"], check_question(row["question"])
        except (json.JSONDecodeError, TypeError, KeyError, InvalidInputError) as err:
            raise InvalidInputError(
                f'{path}, line {lineno}: expected {{"id": ..., "question": "..."}} ({err})'
            ) from err
        rows.append((qid, question))
    for qid, question in rows:
        hits = index.search(question, k=k, mode=mode, where=where, ranker=ranker)
        print(json.dumps({"id": qid, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate, format_report, load_squad, run_file_rows
    from .index import check_mode
    from .query import check_k

    _use_encoder_options(args)
    check_k(args.k)
    check_mode(args.mode)
    docs, questions = load_squad(args.articles, args.questions)
    report = evaluate(
        docs,
        questions,
        k=args.k,
        mode=args.mode,
        baselines=args.baselines,
        model=args.model,
        latency_questions=max(0, args.latency_questions),
    )
    run = report.pop("run")
    if args.run_file is not None:
        with open(args.run_file, "w", encoding="utf-8") as f:
            for row in run_file_rows(run):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ui import serve
    from ui.app import AUTH_ENV, parse_auth

    if not args.max_upload_mb > 0:
        raise InvalidInputError(f"--max-upload-mb must be above 0, got {args.max_upload_mb}")
    if args.max_upload_files < 1:
        raise InvalidInputError(
            f"--max-upload-files must be at least 1, got {args.max_upload_files}"
        )
    serve(
        args.index,
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        max_upload_files=args.max_upload_files,
        auth=parse_auth(args.auth if args.auth is not None else os.environ.get(AUTH_ENV)),
        upload_dir=args.upload_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
