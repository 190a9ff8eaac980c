"""Traitor benchmarks against its peers (APScheduler 3 and 4), side by side in one run.

``python -m bench`` runs the full set (``make bench``); ``python -m bench --quick --json``
runs a short set (< 50 s) and prints one JSON object as the last line of stdout.
See ``bench/README.md`` for what each figure measures and how.

Every measurement runs in a fresh child process (``python -m bench._child``), one
system at a time, so that figures of one system never share a heap, a GC or a CPU
with another's. Modules here must not import ``traitor`` at module level: the
APScheduler 4 children import them from a separate virtualenv.
"""
