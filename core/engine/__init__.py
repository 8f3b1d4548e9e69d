"""The block-job seam: each streaming step is a pure job over one block plus a merge in block order.

A job is a top-level function `job(shared, block) -> small result`: `shared` holds small picklable
descriptors (raster paths or GDAL URIs, band lists, frozen settings, a fitted model), never
pixels, and the job opens what it reads itself through `opened` (a per-process cache, so that an
in-process run opens each raster once, as before). The caller merges the results in block order
and writes output blocks itself, in order, into its one output file, so results are identical
whatever ran the jobs. An `Executor` runs them (`executor.py`): today in this process; the one
in use is chosen in one place, `use_executor` (as joblib's `parallel_backend`), and the core's
entry points never know which it is.
"""

from . import plugin_code  # noqa: F401 - its fingerprint is of the code imported with the engine
from .cache import new_scope, opened, release
from .executor import Executor, InProcessExecutor, current_executor, run_scope, use_executor

__all__ = ["Executor", "InProcessExecutor", "current_executor", "new_scope", "opened",
           "release", "run_scope", "use_executor"]
