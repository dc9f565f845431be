"""The resident world service: backends loaded once, a queue, one worker per device, an output root.

``WorldService.load`` loads one ``WorldPipeline`` per device (``worldgen.server.worlds``: the API,
as `worldgen pano` uses it) and keeps every one for the life of the server. The HTTP front
(``worldgen.server.http``) only calls the methods below; so do the tests.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Optional, Sequence

from .. import __version__
from ..errors import UserInputError
from ..requests import default_preset as checked_preset
from .jobs import MAX_QUEUED, EventCallback, Job, JobBoard, Worker
from .outputs import OutputRoot
from .schema import parse_job
from .worlds import backend_settings, load_pipeline

MAX_WAIT_S = 30.0  # longest a status request may wait for a change


class UnknownJob(UserInputError):
    pass


class WorldService:
    def __init__(self, backend_name: str, instances: Sequence[tuple[Optional[str], Any]], root: OutputRoot, *,
                 default_preset: Optional[str] = None, max_queued: int = MAX_QUEUED,
                 on_event: Optional[EventCallback] = None, load_seconds: float = 0.0) -> None:
        if not instances:
            raise ValueError("a service needs at least one loaded backend")
        self.backend_name = backend_name
        self.root = root
        self.default_preset = checked_preset(default_preset)
        self.board = JobBoard(max_queued=max_queued)
        self.on_event = on_event
        self.load_seconds = load_seconds
        self.started = time.time()
        self.workers = [Worker(self.board, root, backend_name, instance, device, on_event)
                        for device, instance in instances]
        root.clean_staging()  # what a killed server left behind; never referenced by a scene

    @classmethod
    def load(cls, spec, settings: dict, devices: Sequence[Optional[str]], root: OutputRoot, **kwargs) -> "WorldService":
        """Load ``spec`` once per device (``None``: the backend's default device)."""
        started = time.perf_counter()
        instances = []
        for device in devices:
            device_settings = dict(settings, **({"device": device} if device is not None else {}))
            instances.append((device, load_pipeline(spec, device_settings, kwargs.get("default_preset"))))
        return cls(spec.name, instances, root, load_seconds=time.perf_counter() - started, **kwargs)

    # Life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 60.0) -> list[Job]:
        """Refuse new jobs, cancel the queued ones, stop the running ones at their next step and
        wait for them (and for any world being moved into place). Returns the jobs still running
        after ``timeout`` (their staging folders are removed at the next start)."""
        self.board.close()
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            if worker.is_alive():
                worker.join(max(0.0, deadline - time.monotonic()))
        with self.root.publish_lock:  # never exit between moving a GLB and its scene
            running = [w.current for w in self.workers if w.is_alive() and w.current is not None]
        if not running:
            self.root.clean_staging()
        return running

    # Requests ---------------------------------------------------------------------------------
    def check(self, body: Any) -> dict:
        """The request as the server would run it (defaults filled in), without queueing it."""
        return parse_job(body, job_id="0" * 12, default_preset=self.default_preset).record()

    def submit(self, body: Any) -> dict:
        job_id = secrets.token_hex(6)
        spec = parse_job(body, job_id=job_id, default_preset=self.default_preset)
        target = self.root.reserve(spec.dir, spec.name)
        job = Job(id=job_id, spec=spec, target=target, backend=self.backend_name)
        try:
            self.board.add(job)
        except BaseException:
            self.root.release(target)
            raise
        if self.on_event is not None:
            self.on_event("queued", job, "")
        return self.describe(job)

    def job(self, job_id: str) -> Job:
        job = self.board.get(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id[:40]!r} on this server (jobs are kept until it restarts); "
                             f"list them with GET /v1/jobs")
        return job

    def describe(self, job: Job) -> dict:
        return job.to_json(self.root, self.board.position(job))

    def status(self, job_id: str, since: Optional[int] = None, wait: float = 0.0) -> dict:
        """The job's status; with ``since``, first wait (at most ``wait`` seconds) for a newer revision."""
        job = self.job(job_id)
        if since is not None and wait > 0:
            self.board.wait(job, since, min(wait, MAX_WAIT_S))
        return self.describe(job)

    def cancel(self, job_id: str) -> dict:
        job = self.job(job_id)
        self.board.cancel(job)
        return self.describe(job)

    def jobs(self) -> list[dict]:
        return [{"id": job.id, "state": job.state, "name": job.target.name} for job in self.board.jobs()]

    def file(self, job_id: str, relative: str) -> tuple[str, ...]:
        """A finished job's file as parts under the output root, only if it is one the job lists
        (so no URL reaches anything else); open it with ``outputs.open_file`` (no links followed)."""
        job = self.job(job_id)
        if job.state != "done":
            raise UserInputError(f"job {job.id} is {job.state}, not done; its files appear when it is")
        if relative not in job.files:
            raise UnknownJob(f"job {job.id} has no file {relative[:120]!r}; its status lists them under files")
        return (*job.target.parts, *relative.split("/"))

    def health(self) -> dict:
        try:  # paths and dtypes as text, as a scene's manifest keeps them
            settings = json.loads(json.dumps(backend_settings(self.workers[0].instance), default=str))
        except Exception:  # a plugin's settings() fault must not break health
            settings = {}
        return {"status": "stopping" if self.board.closed else "ok", "version": __version__,
                "backend": self.backend_name, "settings": settings, "preset": self.default_preset,
                "workers": [{"device": w.device, "busy": w.current is not None} for w in self.workers],
                "jobs": self.board.counts(), "output_root": str(self.root.path),
                "load_seconds": round(self.load_seconds, 3), "uptime_seconds": round(time.time() - self.started, 3)}
