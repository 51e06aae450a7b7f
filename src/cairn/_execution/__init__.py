"""The execution core: how a function call runs, is checkpointed, retried and waited on.

One owner for every call, inline or dispatched. Modules, lowest first (each imports
only those above it, so the package has no import cycle):

- ``clock``: wall and monotonic time, injectable.
- ``failures``: how a failure is recorded, and what a caller sees for a record.
- ``frames``: the running call (``Frame``) and the executor process (``Process``).
- ``storage``: the executor's guarded store and its running-call flusher.
- ``attempts``: bookkeeping of one call's attempts (what each commit writes).
- ``scheduler``: start, wait and batch: how Futures are started and waited on.
- ``futures``: the Future handles; each kind owns its start and its poll.
- ``driver``: the one attempt driver, for inline and dispatched calls alike.
- ``dispatch``: running a claimed call (the application, a map item, a Future).
- ``calls``: what a decorated function's ``f(...)``, ``map`` and ``reduce`` do.

Nothing is imported here: importing a module of the package stays cheap and acyclic.
"""
