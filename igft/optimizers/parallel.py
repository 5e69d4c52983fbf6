"""Run independent candidate jobs on a thread pool and hand results back in submission order.

Results are consumed in the order jobs were submitted, never in completion order, so the history file
and everything derived from it are the same for any degree of concurrency.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def ordered_map(jobs: Sequence[Callable[[], T]], concurrency: int = 1) -> Iterator[tuple[int, T | BaseException]]:
    """Yield (index, result or raised exception) for each job, in submission order.

    With concurrency 1 the jobs run inline one after another (no thread), which keeps tracebacks simple.
    A caller that stops iterating early (budget spent) cancels the jobs that have not started.
    """
    if concurrency <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            try:
                yield index, job()
            except Exception as exc:  # handed to the caller, which decides what ends the search
                yield index, exc
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="igft-search") as pool:
        futures = [pool.submit(job) for job in jobs]
        try:
            for index, future in enumerate(futures):
                try:
                    yield index, future.result()
                except Exception as exc:
                    yield index, exc
        finally:
            for future in futures:
                future.cancel()
