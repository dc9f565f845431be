"""OUT/.batch/jobs.json (the plan) and OUT/.batch/summary.json (every rank's outcome, aggregated)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from ..scene import jsonfiles
from ..scene.atomic import atomic_write_text
from .jobs import Job
from .shards import _batch_dir, _rank_path, _status_path

SUMMARY_NAME = "summary.json"
PLAN_NAME = "jobs.json"


def write_plan(jobs: Sequence[Job], out: str | Path, world: int) -> Path:
    """OUT/.batch/jobs.json: every job as resolved (name, seed, parameters) and the rank that runs it."""
    order = sorted(jobs, key=lambda job: job.index)
    plan = [job.plan() | {"rank": position % world} for position, job in enumerate(order)]  # as ``shard`` splits
    return atomic_write_text(_batch_dir(Path(out)) / PLAN_NAME, json.dumps({"world": world, "jobs": plan}, indent=2) + "\n")


def summary_name(shard: tuple[int, int] = (0, 1)) -> str:
    """summary.json, or summary-shard-I-of-N.json for one shard of a `--shard I/N` job array (shards
    share OUT, so each keeps its own summary)."""
    index, count = shard
    return SUMMARY_NAME if count == 1 else f"summary-shard-{index}-of-{count}.json"


def summarize(jobs: Sequence[Job], out: str | Path, world: int, ranks: Optional[Sequence[int]] = None,
              name: str = SUMMARY_NAME) -> dict:
    """Aggregate the per-job status files and the reports of ``ranks`` (default: all ``world``) into
    OUT/.batch/``name``."""
    out = Path(out)
    counts = {"done": 0, "skipped": 0, "failed": 0, "missing": 0}
    failures, missing, seconds = [], [], []
    for job in jobs:
        try:
            record = jsonfiles.loads(_status_path(out, job).read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):  # absent, unreadable or damaged: the job counts as not run
            record = {"status": "missing"}
        status = record.get("status") if record.get("status") in counts else "missing"
        counts[status] += 1
        if status == "failed":
            failures.append({"name": job.name, "index": job.index, "line": job.line, "reason": record.get("reason")})
        elif status == "missing":
            missing.append(job.name)
        elif status == "done" and isinstance(record.get("seconds"), (int, float)):
            seconds.append(float(record["seconds"]))
    reports = []
    for rank in (range(world) if ranks is None else ranks):
        try:
            report = jsonfiles.loads(_rank_path(out, rank).read_text(encoding="utf-8"))
            if not isinstance(report, dict):
                raise ValueError("not an object")
            reports.append(report)
        except (OSError, ValueError):
            reports.append({"rank": rank, "missing": True})
    walls = [r["wall_seconds"] for r in reports if "wall_seconds" in r]
    after_load = [r["wall_seconds"] - r.get("load_seconds", 0.0) for r in reports if "wall_seconds" in r]
    wall = max(walls) if walls else None
    summary = {
        "jobs": len(jobs), **counts, "world": world,
        "failures": failures, "missing_jobs": missing,
        "seconds_per_world": _stats(seconds),
        "wall_seconds": wall,
        # Throughput of the whole batch: worlds made over the slowest rank's time (model load included,
        # and without it, since a long batch amortises the load).
        "worlds_per_minute": _rate(counts["done"], wall),
        "worlds_per_minute_after_load": _rate(counts["done"], max(after_load) if after_load else None),
        "ranks": reports,
    }
    atomic_write_text(_batch_dir(out) / name, json.dumps(summary, indent=2) + "\n")
    return summary


def _stats(values: list[float]) -> Optional[dict]:
    if not values:
        return None
    return {"mean": round(sum(values) / len(values), 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "count": len(values)}


def _rate(done: int, seconds: Optional[float]) -> Optional[float]:
    return round(60.0 * done / seconds, 3) if seconds and seconds > 0 else None

