"""Running a shard: each job built in OUT/.batch/tmp/ and moved into place (GLB first, scene folder
last), so ``OUT/NAME/scene.json`` never exists without its GLB; a failing job is recorded and the
batch goes on; each rank writes one status file per job and one report."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..scene.atomic import atomic_write_text
from ..errors import WorldgenError
from .jobs import Job
from .shards import _batch_dir, _rank_path, _status_path, existing_world, glb_path, scene_path, shard
from .summary import summarize, summary_name, write_plan

STAGING_SEP = "~"  # never in a job name, so NAME~* globs only that job's staging folders

# make_world(job, scene_dir, glb_path) writes one complete world at those (staging) paths.
MakeWorld = Callable[[Job, Path, Path], None]


@dataclass
class JobResult:
    name: str
    index: int
    status: str  # "done", "skipped" or "failed"
    seconds: Optional[float] = None
    reason: Optional[str] = None
    rank: int = 0
    traceback: Optional[str] = None  # for faults that are not worldgen's own messages: where it broke


@dataclass
class RankReport:
    rank: int
    world: int
    results: list[JobResult]
    wall_seconds: float
    load_seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def one_line(exc: BaseException, limit: int = 500) -> str:
    """A failure reason for the summary: worldgen's own messages as they are, others with their type."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, WorldgenError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:limit] or type(exc).__name__


def run_shard(jobs: Sequence[Job], out: str | Path, make_world: MakeWorld, *, rank: int = 0, world: int = 1,
              on_result: Optional[Callable[[JobResult, int, int], None]] = None) -> RankReport:
    """Run this rank's share of ``jobs`` into ``out``; never raises for a single job's failure."""
    out = Path(out)
    started = time.perf_counter()
    mine = shard(jobs, rank, world)
    status_dir = _batch_dir(out) / "status"
    status_dir.mkdir(parents=True, exist_ok=True)
    # Statuses of this rank's jobs are rewritten below; clearing them first means a job that this
    # run never reaches (a crash) shows up as missing in the summary, not with last run's status.
    for job in mine:
        _status_path(out, job).unlink(missing_ok=True)
    _rank_path(out, rank).unlink(missing_ok=True)
    results = []
    for position, job in enumerate(mine, start=1):
        result = _run_one(job, out, make_world, rank)
        _write_status(out, job, result, world)
        results.append(result)
        if on_result is not None:
            on_result(result, position, len(mine))
    wall = time.perf_counter() - started
    report = RankReport(rank=rank, world=world, results=results, wall_seconds=wall,
                        load_seconds=float(getattr(make_world, "load_seconds", 0.0) or 0.0))
    atomic_write_text(_rank_path(out, rank), json.dumps({
        "rank": rank, "world": world, "host": socket.gethostname(), "jobs": len(mine),
        "done": report.count("done"), "skipped": report.count("skipped"), "failed": report.count("failed"),
        "wall_seconds": round(wall, 3), "load_seconds": round(report.load_seconds, 3),
    }, indent=2) + "\n")
    return report


def _run_one(job: Job, out: Path, make_world: MakeWorld, rank: int) -> JobResult:
    """One job under its lock: two processes given the same job (overlapping shards, a rerun while the
    first still runs) never build it at once; the second finds it complete and skips it."""
    import fcntl

    lock_path = _batch_dir(out) / "locks" / f"{job.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        return _run_locked(job, out, make_world, rank)


def _run_locked(job: Job, out: Path, make_world: MakeWorld, rank: int) -> JobResult:
    state, why = existing_world(out, job)
    if state == "complete":
        return JobResult(job.name, job.index, "skipped", rank=rank)
    if state == "conflict":
        return JobResult(job.name, job.index, "failed", reason=why, rank=rank)
    staging_root = _batch_dir(out) / "tmp"
    for leftover in staging_root.glob(f"{job.name}{STAGING_SEP}*"):  # from an interrupted earlier run
        shutil.rmtree(leftover, ignore_errors=True)
    staging = staging_root / f"{job.name}{STAGING_SEP}{rank}-{os.getpid()}"
    started = time.perf_counter()
    try:
        staging.mkdir(parents=True)
        scene_tmp, glb_tmp = staging / job.name, staging / f"{job.name}.glb"
        make_world(job, scene_tmp, glb_tmp)
        if not scene_tmp.is_dir() or not glb_tmp.is_file():
            raise WorldgenError(f"the world maker wrote no {'scene' if not scene_tmp.is_dir() else 'GLB'} for "
                                f"{job.name}; this is a bug in the backend or recipe hook")
        # GLB first, scene folder last: a scene.json in OUT always has its GLB.
        os.replace(glb_tmp, glb_path(out, job))
        os.rename(scene_tmp, scene_path(out, job))
    except Exception as exc:  # one job's fault, whatever it is, must not end the batch
        recover = getattr(make_world, "recover", None)
        if recover is not None:
            recover()
        return JobResult(job.name, job.index, "failed", seconds=time.perf_counter() - started,
                         reason=one_line(exc), rank=rank,
                         traceback=None if isinstance(exc, WorldgenError) else traceback.format_exc())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return JobResult(job.name, job.index, "done", seconds=time.perf_counter() - started, rank=rank)


def _write_status(out: Path, job: Job, result: JobResult, world: int) -> None:
    record = {"name": job.name, "index": job.index, "line": job.line, "status": result.status,
              "reason": result.reason, "seconds": None if result.seconds is None else round(result.seconds, 3),
              "seed": job.seed, "rank": result.rank, "world": world, "host": socket.gethostname(),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if result.traceback:
        record["traceback"] = result.traceback
    atomic_write_text(_status_path(out, job), json.dumps(record, indent=2) + "\n")



def run_batch(jobs: Sequence[Job], out: str | Path, make_world: MakeWorld, *, rank: int = 0, world: int = 1,
              barrier: Optional[Callable[[], None]] = None,
              on_result: Optional[Callable[[JobResult, int, int], None]] = None,
              shard_of: tuple[int, int] = (0, 1)) -> Optional[dict]:
    """Run this rank's shard, wait for every rank (``barrier``), and return the summary on rank 0
    (None on the others). With one process and no barrier, it simply runs every job in order.

    ``shard_of`` (I, N): this launch is shard I of N separate launches (`--shard I/N`, e.g. a job
    array) writing into the same OUT: its ranks are the global ranks I*world .. I*world+world-1 of
    N*world, so shards never share a job or a report file; each summarizes its own jobs."""
    out = Path(out)
    index, count = shard_of
    first, total = index * world, count * world
    if rank + first == 0:
        write_plan(jobs, out, total)
    run_shard(jobs, out, make_world, rank=first + rank, world=total, on_result=on_result)
    if barrier is not None:
        barrier()
    if rank != 0:
        return None
    mine = [job for position, job in enumerate(sorted(jobs, key=lambda j: j.index))
            if first <= position % total < first + world]
    return summarize(mine, out, total, ranks=range(first, first + world), name=summary_name(shard_of))

