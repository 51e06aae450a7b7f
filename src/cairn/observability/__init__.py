"""Seeing inside Cairn: logs with the call's context, OpenTelemetry traces,
Prometheus metrics and streamed output.

``configure_logging`` is what the CLI uses; the formatters serve applications
that set up logging themselves.
"""

from __future__ import annotations

from cairn.observability._logging import (
    LOG_FORMATS,
    JsonFormatter,
    TextFormatter,
    install_log_context,
)
from cairn.observability._logging import configure as configure_logging

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "install_log_context",
]
