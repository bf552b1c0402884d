"""Run independent jobs in worker processes or on a Dask distributed cluster: the one place
that does it for `rxwatch audit` (partitions of an extract) and `rxwatch cohort` (chunks of
synthetic patients).

    for result in run_jobs(fn, jobs_list, jobs=2):                       # local processes
    for result in run_jobs(fn, jobs_list, scheduler="tcp://host:8786"):  # a Dask cluster

`fn` is a module-level function (importable by the workers) of one job, plain picklable data;
results come back as they finish (the caller orders them). At most `in_flight` jobs per worker
are submitted at a time, so the results waiting to be read stay bounded on both sides.
`ship(job)`, if given, turns a job into what is sent to a cluster (e.g. adds the bytes of a
file the cluster's machines cannot see).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator


def run_jobs(fn: Callable[[dict], Any], job_list: list[dict], *, jobs: int = 1, scheduler: str | None = None,
             ship: Callable[[dict], dict] | None = None, in_flight: int = 2) -> Iterator[Any]:
    """Yield `fn(job)` for every job, in the order they finish: in this process when `jobs`
    is 1 or there is one job, in `jobs` spawned worker processes otherwise, or on the Dask
    scheduler at `scheduler`."""
    if scheduler:
        yield from _dask(fn, job_list, scheduler, ship, in_flight)
        return
    if jobs <= 1 or len(job_list) <= 1:
        for job in job_list:
            yield fn(job)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs Arrow's threads
    workers = min(jobs, len(job_list))
    pending = iter(job_list)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        running = {pool.submit(fn, job) for _, job in zip(range(workers * in_flight), pending)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                nxt = next(pending, None)
                if nxt is not None:
                    running.add(pool.submit(fn, nxt))
            for f in done:
                yield f.result()


def _dask(fn, job_list: list[dict], address: str, ship, in_flight: int) -> Iterator[Any]:
    from distributed import Client, as_completed

    with Client(address, set_as_default=False) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        pending = iter(job_list)

        def submit(job):
            return client.submit(fn, ship(job) if ship else job, pure=False)

        first = [submit(j) for _, j in zip(range(workers * in_flight), pending)]
        if not first:
            return
        ac = as_completed(first, loop=client.loop)
        for future in ac:
            result = future.result()
            nxt = next(pending, None)
            if nxt is not None:
                ac.add(submit(nxt))
            yield result
