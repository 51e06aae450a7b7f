"""The README's quickstart: a three-step request you can break and replay."""

from __future__ import annotations

import os

from cairn import RequestContext, Retries, application, function


@function(retries=Retries(max_retries=2, initial_delay=0.2))
def fetch_temperature(city: str) -> float:
    """Stands in for a flaky API. Fails while $BREAK_CITY names this city."""
    if os.environ.get("BREAK_CITY") == city:
        raise ConnectionError(f"weather API unreachable for {city}")
    print(f"  (fetching {city})")  # shows when the code really runs
    return float(sum(map(ord, city)) % 35)  # a made-up reading


@application()
@function()
def forecast(cities: list[str]) -> dict[str, float]:
    ctx = RequestContext.get()
    temperatures = {}
    for i, city in enumerate(cities):
        ctx.progress.update(i, len(cities), f"fetching {city}")
        temperatures[city] = fetch_temperature(city)
    return temperatures
