"""Entry point of a measurement child: ``python -m bench._child MODULE FUNC 'JSON-PARAMS'``.

Runs ``bench.MODULE.FUNC(**params)`` (a plain or an ``async`` function returning a
dict) and prints ``BENCH-RESULT {json}`` as the last line of stdout. A failure is
reported the same way as ``{"error": ...}`` so the runner can carry on.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback

from bench._common import RESULT_TAG


def main() -> int:
    module_name, func_name, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        module = importlib.import_module(f"bench.{module_name}")
        func = getattr(module, func_name)
        params = json.loads(raw)
        profile_to = os.environ.get("BENCH_PROFILE")  # a path: profile the child with pyinstrument
        profiler = None
        if profile_to:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
        if inspect.iscoroutinefunction(func):
            result = asyncio.run(func(**params))
        else:
            result = func(**params)
        if profiler is not None:
            profiler.stop()
            with open(profile_to, "w", encoding="utf-8") as out:
                out.write(profiler.output_text(unicode=False, color=False, show_all=False))
            print(f"profile written to {profile_to}", file=sys.stderr)
    except BaseException as exc:  # report any failure as a result line
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.flush()
    print(RESULT_TAG + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
