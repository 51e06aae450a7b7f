"""Wall-clock time for the server and the CLI.

The execution core (``cairn._execution``) owns calls now; this name stays for the
code outside it that stamps records with ``now_ms()``.
"""

from __future__ import annotations

from cairn._execution.clock import now_ms

__all__ = ["now_ms"]
