"""Back ends that run a list of RunSpecs: in this process (the notebook), `jobs=N` local worker
processes (spawned), or a submitit executor (Slurm, or submitit's local executor for tests), so
the same table runs on a cluster by changing one argument. Each yields (spec, RunResult) as runs
finish; a failed run does not stop the others, and is raised once they have finished."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import time

from ..errors import UserError
from .run import run_one


def _in_process(specs, bar):
    """One run after the other in this process (progress bars and Ctrl-C as in the notebook)."""
    for spec in specs:
        bar.set_postfix_str(f"{spec.variant.name} seed {spec.seed}")
        yield spec, run_one(spec)


def _finish(failed: list, total: int) -> None:
    """After the other runs have finished: say which failed, then raise the first failure."""
    if failed:
        names = ", ".join(f"{spec.variant.name} seed {spec.seed}" for spec, _ in failed)
        print(f"ablate: {len(failed)} of {total} runs failed ({names}); the finished runs are cached: "
              "run again to retry the failed ones", file=sys.stderr)
        raise failed[0][1]


def _announce(started) -> None:
    """A worker's initializer: put its pid on `started`, so that the parent knows its workers."""
    started.put(os.getpid())


def _terminate_workers(started) -> None:
    """SIGTERM to the live workers that announced themselves on `started`."""
    workers = set()
    while not started.empty():
        workers.add(started.get())
    for process in multiprocessing.active_children():
        if process.pid in workers:
            process.terminate()


def _processes(specs, jobs: int, bar):
    """Worker processes (spawned); a failed run does not stop the others. On an interruption the
    workers get SIGTERM, so that a run that is training saves its checkpoint."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    started = context.SimpleQueue()  # each worker's pid, put there as it starts
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_announce, initargs=(started,))
    failed = []
    try:
        futures = {pool.submit(run_one, dataclasses.replace(spec, progress=False, threads=threads)): spec
                   for spec in specs}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - reported and raised once the others finish
                failed.append((futures[future], error))
                continue
            yield futures[future], result
    except BaseException:
        _terminate_workers(started)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        started.close()
    _finish(failed, len(specs))


def _submitit(specs, executor, bar):
    """submitit jobs (Slurm or local), polled; jobs still pending are cancelled on an interruption."""
    pending = [(spec, executor.submit(run_one, dataclasses.replace(spec, progress=False))) for spec in specs]
    failed = []
    try:
        while pending:
            for item in [item for item in pending if item[1].done()]:
                pending.remove(item)
                try:
                    result = item[1].result()
                except Exception as error:  # noqa: BLE001 - reported and raised once the others finish
                    failed.append((item[0], error))
                    continue
                yield item[0], result
            if pending:
                time.sleep(1.0)
    except BaseException:
        for _, job in pending:
            job.cancel(check=False)
        raise
    _finish(failed, len(specs))


def slurm_executor(folder, **parameters):
    """A submitit executor for `run_ablations(executor=...)`: Slurm when available (parameters such
    as slurm_partition, timeout_min, gpus_per_node, cpus_per_task), or cluster="local" / "debug"."""
    try:
        import submitit
    except ImportError:
        raise UserError("the cluster back end needs submitit: pip install 'qmvos-lab[cluster]'") from None
    cluster = parameters.pop("cluster", None)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    parameters.setdefault("timeout_min", 120)
    try:
        executor.update_parameters(**parameters)
    except (TypeError, ValueError) as error:
        raise UserError(f"submitit parameters: {str(error).splitlines()[0]}") from None
    return executor
