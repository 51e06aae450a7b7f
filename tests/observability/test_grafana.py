"""The Grafana dashboard of docs/howto queries only metrics Cairn exports, and
every metric Cairn exports has a panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from cairn.observability import _metrics

DASHBOARD = Path(__file__).parents[2] / "docs" / "howto" / "grafana-cairn.json"
# Read from the store when scraped (server only), not a prometheus_client metric.
STORE_GAUGES = {"cairn_store_requests", "cairn_calls_waiting"}


def exported() -> set[str]:
    registry = CollectorRegistry()
    _metrics._define(registry)
    return {
        sample_name
        for family in registry.collect()
        for sample_name in (
            [family.name + "_total"]
            if family.type == "counter"
            else [family.name + s for s in ("_bucket", "_sum", "_count")]
            if family.type == "histogram"
            else [family.name]
        )
    } | STORE_GAUGES


def test_every_query_names_an_exported_metric_and_every_metric_is_drawn():
    document = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in document["panels"]
        for target in panel["targets"]
        for name in re.findall(r"cairn_[a-z_]+", target["expr"])
    }
    names = exported()
    assert queried <= names, queried - names
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}
    drawn = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in queried}
    assert families == drawn, families ^ drawn
    assert len({p["id"] for p in document["panels"]}) == len(document["panels"])
