"""An application whose process exports spans with OTLP to ``OTLP_URL``: the
tracer provider is the application's, set up as its users would."""

from __future__ import annotations

import os
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import cairn
from cairn import application, function

provider = TracerProvider(resource=Resource.create({"service.name": "traced-app"}))
provider.add_span_processor(
    BatchSpanProcessor(
        OTLPSpanExporter(endpoint=os.environ["OTLP_URL"]), schedule_delay_millis=200
    )
)
trace.set_tracer_provider(provider)


@function()
def traced_square(x: int) -> int:
    trace.get_current_span().set_attribute("pid", os.getpid())  # the attempt's span
    time.sleep(0.2)  # long enough for idle executors to take the other items
    return x * x


@function()
def traced_total(values: list[int]) -> int:
    return sum(values)


@application()
@function()
def traced_pipeline(n: int) -> int:
    trace.get_current_span().set_attribute("pid", os.getpid())
    squares = traced_square.map(list(range(n)))  # other executors
    return traced_total(squares)  # inline, in this process


@function(timeout=1)
def traced_stuck(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@application()
@function()
def traced_patient(seconds: float) -> str:
    try:
        return traced_stuck(seconds)
    except cairn.FunctionTimeout:
        return "gave up"


if __name__ == "__main__":
    app = traced_patient if sys.argv[3:] == ["stuck"] else traced_pipeline
    with trace.get_tracer("caller").start_as_current_span("caller work"):
        request = cairn.run_local_application(
            app, int(sys.argv[1]), cairn_store=sys.argv[2]
        )
    print(request.id, request.output())
