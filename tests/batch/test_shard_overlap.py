"""`--shard I/N` launches that overlap (two of them given the same job at once) never build a world
twice: each job is built under its own lock and checked again once the lock is held (issue 25)."""

import threading
import time

from worldgen.batch import run_shard
from worldgen.batch.shards import shard

PROMPTS = ["a misty fjord at dawn", "rolling green hills", "a red desert canyon"]


def test_two_launches_given_the_same_jobs_at_once_build_each_world_once(tmp_path, small_jobs, maker):
    jobs = small_jobs(PROMPTS)
    built, lock = [], threading.Lock()

    def slow_maker():
        inner = maker()

        def make(job, scene_dir, glb):
            with lock:
                built.append(job.name)
            time.sleep(0.3)  # long enough for the other launch to reach the same job meanwhile
            inner(job, scene_dir, glb)
        return make

    reports = [None, None]

    def launch(k):
        reports[k] = run_shard(jobs, tmp_path / "out", slow_maker(), rank=0, world=1)

    threads = [threading.Thread(target=launch, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(built) == sorted(job.name for job in jobs)  # each world built exactly once
    statuses = sorted(r.status for report in reports for r in report.results)
    assert statuses == ["done"] * 3 + ["skipped"] * 3


def test_shards_by_index_order_cover_every_job_once_whatever_the_order_given(small_jobs):
    jobs = small_jobs(PROMPTS + ["a lake", "a cave", "a dune", "a glacier"])
    for count in (1, 2, 3, 7):
        parts = [shard(list(reversed(jobs)), k, count) for k in range(count)]
        names = [job.name for part in parts for job in part]
        assert sorted(names) == sorted(job.name for job in jobs) and len(names) == len(jobs)
        assert [len(p) for p in parts] == [len(jobs) // count + (k < len(jobs) % count) for k in range(count)]
