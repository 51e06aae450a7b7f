"""A durable batch pipeline: parse every document in parallel, then fold a summary.

``parse_document.map(paths)`` starts one call per document; each is its own
checkpoint. ``aggregate.reduce(parsed, initial)`` folds the results left to right,
one checkpointed step per document. If 1 of 10 documents fails to parse, a replay
serves the other 9 from their checkpoints and parses only that one again.

The documents are the real files in ``examples/documents/``: Markdown, plain text,
CSV and HTML. Run it::

    python examples/batch_pipeline.py                        # summarize them
    python examples/batch_pipeline.py --fail-on rivers.csv   # one parse fails
    python examples/batch_pipeline.py --replay REQUEST_ID    # replay: only it runs
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from textkit import DOCUMENTS, STOPWORDS, load_document

from cairn import (
    RequestContext,
    Retries,
    application,
    function,
    get_request,
    run_local_application,
)

KINDS = ("md", "txt", "csv", "html")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def words_of(text: str) -> list[str]:
    """The words of a text, as written."""
    return _WORD.findall(text)


def content_terms(words: list[str]) -> Counter[str]:
    """Lower-cased words of four letters or more that are not stopwords."""
    lowered = (w.lower().strip("'-") for w in words)
    return Counter(w for w in lowered if len(w) >= 4 and w not in STOPWORDS)


def csv_profile(text: str) -> dict[str, Any]:
    """Columns, row count, and min / max / mean of each numeric column."""
    header, *rows = list(csv.reader(io.StringIO(text)))
    numeric = {}
    for i, column in enumerate(header):
        try:
            values = [float(row[i]) for row in rows]
        except ValueError:
            continue
        numeric[column] = {
            "min": min(values),
            "max": max(values),
            "mean": round(sum(values) / len(values), 3),
        }
    return {"columns": header, "rows": len(rows), "numeric": numeric}


def title_of(text: str) -> str:
    """The first line: a Markdown heading, an HTML <title>, or a plain-text title."""
    for line in text.splitlines():
        if line.strip():
            return line.strip("# ").strip()
    return ""


@function(timeout=30)
def list_documents(folder: str) -> list[str]:
    """The documents to process, sorted. A function, so a replay sees the same list."""
    return sorted(
        str(p) for p in Path(folder).iterdir() if p.suffix.lstrip(".") in KINDS
    )


@function(timeout=60, retries=Retries(max_retries=2, initial_delay=0.1, max_delay=1))
def parse_document(path: str) -> dict[str, Any]:
    """Parse one document: its title, word count, top terms, CSV profile."""
    name = Path(path).name
    if os.environ.get("PIPELINE_FAIL_ON") == name:
        raise ValueError(f"cannot parse {name} (fault injected by PIPELINE_FAIL_ON)")
    document = load_document(Path(path))  # HTML comes back as plain text
    text = document["text"]
    parsed: dict[str, Any] = {
        "name": name,
        "kind": document["kind"],
        "bytes": Path(path).stat().st_size,
        "title": title_of(text),
    }
    if document["kind"] == "csv":
        profile = csv_profile(text)
        parsed.update(profile)
        parsed["title"] = (
            f"table, {profile['rows']} rows: {', '.join(profile['columns'])}"
        )
    words = words_of(text)
    parsed["words"] = len(words)
    parsed["top_terms"] = dict(content_terms(words).most_common(25))
    return parsed


@function()
def aggregate(summary: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """Fold one parsed document into the running summary."""
    terms = Counter(summary["terms"])
    terms.update(document["top_terms"])
    by_kind = dict(summary["by_kind"])
    by_kind[document["kind"]] = by_kind.get(document["kind"], 0) + 1
    table_rows = summary["table_rows"] + document.get("rows", 0)
    return {
        "documents": summary["documents"] + 1,
        "words": summary["words"] + document["words"],
        "bytes": summary["bytes"] + document["bytes"],
        "by_kind": by_kind,
        "table_rows": table_rows,
        "terms": dict(terms),
        "per_document": [
            *summary["per_document"],
            {k: document[k] for k in ("name", "kind", "words", "title")},
        ],
        "numeric_columns": {
            **summary["numeric_columns"],
            **{
                f"{document['name']}:{column}": stats
                for column, stats in document.get("numeric", {}).items()
            },
        },
    }


EMPTY_SUMMARY: dict[str, Any] = {
    "documents": 0,
    "words": 0,
    "bytes": 0,
    "by_kind": {},
    "table_rows": 0,
    "terms": {},
    "per_document": [],
    "numeric_columns": {},
}


@application()
@function()
def summarize_documents(folder: str = str(DOCUMENTS)) -> dict[str, Any]:
    """List, parse (in parallel), and fold the documents of a folder."""
    ctx = RequestContext.get()
    paths = list_documents(folder)
    ctx.progress.update(0, 2, f"parsing {len(paths)} documents")
    parsed = parse_document.map(paths)
    ctx.progress.update(1, 2, "aggregating")
    summary = aggregate.reduce(parsed, EMPTY_SUMMARY)
    ctx.progress.update(2, 2, "done")
    top = Counter(summary.pop("terms")).most_common(12)
    return {**summary, "top_terms": top}


# -- command line ------------------------------------------------------------------------
def report(request_id: str, store: str | None) -> int:
    """Print the summary, and how many calls ran or came from checkpoints."""
    request = get_request(request_id, store=store)
    calls = [c for c in request.calls() if c.kind != "app"]
    parses = [c for c in calls if c.function == "parse_document"]
    ran = sum(c.ran_in_latest_run for c in parses)
    served = sum(c.served_from_checkpoint for c in parses)
    print(f"request {request.id}: {request.status()}")
    print(
        f"  parse_document: {ran} ran in this run, "
        f"{served} served from earlier checkpoints"
    )
    try:
        summary = request.output()
    except Exception as error:
        failed = [
            c.error["message"] for c in parses if c.error and c.status == "failed"
        ]
        print(f"  failed: {error}")
        for message in failed:
            print(f"    {message}")
        where = f" --store {store}" if store else ""
        print(f"  replay it: python {sys.argv[0]} --replay {request.id}{where}")
        return 1
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary["by_kind"].items()))
    print(
        f"{summary['documents']} documents ({kinds}), {summary['words']:,} words, "
        f"{summary['bytes']:,} bytes, {summary['table_rows']} table rows"
    )
    for doc in summary["per_document"]:
        print(
            f"  {doc['name']:<34} {doc['kind']:<5} {doc['words']:>5} words  {doc['title']}"
        )
    print("top terms: " + ", ".join(f"{t} ({n})" for t, n in summary["top_terms"]))
    print("numeric columns:")
    for column, stats in summary["numeric_columns"].items():
        print(
            f"  {column:<40} min {stats['min']:>10g}  max {stats['max']:>10g}  "
            f"mean {stats['mean']:>10g}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(DOCUMENTS))
    parser.add_argument("--store", help="store URL (default: $CAIRN_STORE or .cairn)")
    parser.add_argument("--fail-on", metavar="NAME", help="make this document fail")
    parser.add_argument("--replay", metavar="REQUEST_ID", help="replay a request")
    options = parser.parse_args(argv)
    if options.fail_on:
        os.environ["PIPELINE_FAIL_ON"] = options.fail_on
    if options.replay:
        get_request(options.replay, store=options.store).replay()
        return report(options.replay, options.store)
    kwargs: dict[str, Any] = {"cairn_store": options.store} if options.store else {}
    request = run_local_application(summarize_documents, options.folder, **kwargs)
    return report(request.id, options.store)


if __name__ == "__main__":
    sys.exit(main())
