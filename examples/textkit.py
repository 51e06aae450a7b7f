"""Small text helpers shared by the examples: tokens, passages, HTML, arithmetic.

Plain Python, nothing durable here: the examples wrap these in ``@function()``s.
"""

from __future__ import annotations

import ast
import csv
import html.parser
import io
import math
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCUMENTS = Path(__file__).resolve().parent / "documents"
"""The sample documents the examples work on."""

STOPWORDS = frozenset(
    """a about after all also an and any are as at be because been before being
    between both but by can could did do does each even for from had has have how
    i if in into is it its may more most much my no not of on one only or other our
    over same should so some such than that the their them then there these they
    this those through to too under up very was we were what when where which while
    who why will with would you your""".split()
)
"""Common English words that carry no topic."""

# Words of a question that say what to do, not what about.
_QUESTION_WORDS = frozenset("answer notes take tell use used".split())
_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)?")


def stem(token: str) -> str:
    """A very small stemmer: "tides", "tide" -> "tid"; "opened" -> "open"."""
    if len(token) > 3 and token.endswith("ies"):
        token = token[:-3] + "y"
    elif len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        token = token[:-1]
    for suffix in ("ing", "ed", "e"):
        if len(token) > len(suffix) + 3 and token.endswith(suffix):
            return token[: -len(suffix)]
    return token


def terms(text: str) -> list[str]:
    """Lower-case, stemmed words and numbers, without stopwords."""
    skip = STOPWORDS | _QUESTION_WORDS
    return [stem(t) for t in _TOKEN.findall(text.lower()) if t not in skip]


def questions_of(task: str) -> list[str]:
    """The task's questions: its lines that start with "-", "*" or a number."""
    found = []
    for line in task.splitlines():
        match = re.match(r"\s*(?:[-*]|\d+[.)])\s+(.*\S)", line)
        if match:
            found.append(match.group(1))
    return found or [task.strip()]


def arithmetic_of(question: str) -> str | None:
    """The expression of a "calculate ..." question."""
    match = re.match(r"\s*(?:calculate|compute)\s+(.+)", question, re.IGNORECASE)
    return match.group(1).strip() if match else None


_SUPERLATIVES = {
    "longest": (max, ("length", "period")),
    "largest": (max, ("diameter", "area", "mass", "size")),
    "biggest": (max, ("diameter", "area", "mass", "size")),
    "heaviest": (max, ("mass", "weight")),
    "farthest": (max, ("distance",)),
    "shortest": (min, ("length", "period")),
    "smallest": (min, ("diameter", "area", "mass", "size")),
    "lightest": (min, ("mass", "weight")),
    "closest": (min, ("distance",)),
}


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def best_row(question: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """The CSV row that answers a question: by shared terms, or by a superlative."""
    # Terms that name columns ("river" in "longest river in Asia") do not pick rows.
    wanted = set(terms(question)) - set(terms(" ".join(header)))
    scored = [(len(wanted & set(terms(" ".join(row)))), row) for row in rows]
    top = max(score for score, _ in scored)
    candidates = [row for score, row in scored if score == top]
    words = question.lower().split()
    for word, (pick, hints) in _SUPERLATIVES.items():
        if word not in " ".join(words):
            continue
        numeric = [
            i
            for i in range(len(header))
            if all(_number(row[i]) is not None for row in candidates)
        ]
        hinted = [i for i in numeric if any(h in header[i] for h in hints)]
        if hinted or numeric:
            column = (hinted or numeric)[0]
            return pick(candidates, key=lambda row: _number(row[column]) or 0.0)
    return candidates[0]


def passages_of(text: str) -> list[str]:
    """Sentences, list items and table rows ("column: value; ...") of a text."""
    blocks: list[str] = []
    paragraph: list[str] = []
    header: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(" ".join(paragraph))
            paragraph.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("|"):  # a table row
            flush()
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            if header is None:
                header = cells
            else:
                pairs = zip(header, cells, strict=False)
                blocks.append("; ".join(f"{k}: {v}" for k, v in pairs))
            continue
        header = None
        item = re.match(r"(?:[-*]|\d+[.)])\s+(.*)", line)
        if not line or line.startswith("#") or item:
            flush()
        if item:
            paragraph.append(item.group(1))
        elif line and not line.startswith("#"):
            paragraph.append(line)
    flush()
    sentences = []
    for block in blocks:
        sentences += re.split(r"(?<=[.!?])\s+", block.replace("**", ""))
    return [s for s in sentences if len(s) > 20]


def best_passage(question: str, document: dict[str, Any]) -> str:
    """The passage of a document that answers a question best (shares most terms)."""
    if document["kind"] == "csv":
        header, *rows = list(csv.reader(io.StringIO(document["text"])))
        row = best_row(question, header, rows)
        return "; ".join(f"{k}: {v}" for k, v in zip(header, row, strict=False))
    wanted = set(terms(question))
    passages = passages_of(document["text"])
    if not passages:
        return "(nothing relevant)"
    # Most shared terms; among equals, the longer passage says more.
    return max(passages, key=lambda p: (len(wanted & set(terms(p))), len(p)))


class _HTMLText(html.parser.HTMLParser):
    """An HTML page as markdown-ish text: headings, paragraphs, list items, tables."""

    PREFIX = {"h1": "# ", "h2": "## ", "h3": "### ", "li": "- ", "p": "", "div": ""}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.PREFIX:
            self.parts.append("\n\n" + self.PREFIX[tag])
        elif tag == "tr":
            self.parts.append("\n|")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.parts.append(" |")
        elif tag == "title":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def load_document(path: Path) -> dict[str, Any]:
    """A document's name, kind and plain text (HTML tags removed)."""
    raw = path.read_text(encoding="utf-8")
    kind = path.suffix.lstrip(".")
    if kind == "html":
        parser = _HTMLText()
        parser.feed(raw)
        raw = parser.text()
    return {"name": path.name, "kind": kind, "text": raw}


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "round": round,
    "sqrt": math.sqrt,
    "abs": abs,
    "min": min,
    "max": max,
}


def evaluate(node: ast.AST) -> float:
    """Arithmetic only: numbers, + - * / // % **, and a few functions."""
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        operation = _OPERATORS[type(node.op)]
        return float(operation(evaluate(node.left), evaluate(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return float(_OPERATORS[type(node.op)](evaluate(node.operand)))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
    ):
        return float(_FUNCTIONS[node.func.id](*(evaluate(a) for a in node.args)))
    raise ValueError(f"not arithmetic: {ast.unparse(node)}")
