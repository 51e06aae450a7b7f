"""``map``'s blocking result: a list with a durable ``reduce``, as the batch example
of Tensorlake's durable-execution page uses it."""

from __future__ import annotations

import pickle

from cairn import application, function
from cairn.types import RequestStatus


def test_the_batch_example_runs_as_written_one_checkpoint_per_step(
    run, effects, tmp_path
):
    broken = tmp_path / "broken"
    broken.touch()

    @function(timeout=120)
    def process_document(doc_url: str) -> dict:
        return {"url": doc_url, "size": len(doc_url)}

    @function()
    def aggregate_results(results: dict, acc: dict) -> dict:
        effects.record(f"aggregate {results['url']}")
        if results["url"] == "b.pdf" and broken.exists():
            raise RuntimeError("aggregation fails once")
        acc["documents"].append(results)
        return acc

    @application()
    @function()
    def batch_processor(doc_urls: list[str]) -> dict:
        results = process_document.map(doc_urls)
        summary = results.reduce(aggregate_results, {"documents": []})
        return summary

    request = run(batch_processor, ["a.pdf", "b.pdf", "c.pdf"])
    assert request.status() is RequestStatus.FAILED
    broken.unlink()
    effects.clear()
    request.replay()
    assert request.output() == {
        "documents": [
            {"url": "a.pdf", "size": 5},
            {"url": "b.pdf", "size": 5},
            {"url": "c.pdf", "size": 5},
        ]
    }
    # The step that succeeded is served; the failed one and the rest run.
    assert effects.lines() == ["aggregate b.pdf", "aggregate c.pdf"]
    steps = [c for c in request.calls() if c.kind == "reduce_step"]
    assert len(steps) == 3


def test_a_map_result_is_a_list_checkpointed_as_a_plain_list(run):
    @function()
    def shout(word: str) -> str:
        return word.upper()

    @function()
    def results_of(words: list[str]) -> bytes:
        return pickle.dumps(shout.map(words))

    @application()
    @function()
    def plain() -> dict[str, object]:
        results = shout.map(["a", "b"])
        return {
            "is_list": isinstance(results, list),
            "pickled_type": type(pickle.loads(results_of(["c"]))).__name__,
            # Function.reduce calls f(accumulator, item), a map result's f(item, acc).
            "function_reduce": join_words_item_first.reduce(["x", "y", "z"]),
            "no_initial": shout.map(["x", "y", "z"]).reduce(join_words_item_first),
            "seeded": shout.map(["x", "y"]).reduce(join_words_item_first, "<"),
        }

    assert run(plain).output() == {
        "is_list": True,
        "pickled_type": "list",
        "function_reduce": "xyz",
        "no_initial": "ZYX",
        "seeded": "YX<",
    }


@function()
def join_words_item_first(item: str, acc: str) -> str:
    return item + acc
