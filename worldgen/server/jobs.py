"""Jobs, the queue, and the workers that run them.

One ``JobBoard`` holds every job record and the queue under one condition variable: HTTP threads
read and wait on it, workers take jobs from it. Each ``Worker`` owns one loaded backend (one per
device), so a GPU runs one job at a time and a CPU-only server has a single worker. A job is
cancelled between sampler steps: its progress callback raises ``JobCancelled``, and the staging
folder is removed, so nothing half-made reaches the output root.
"""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
import stat
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..errors import WorldgenError
from ..progress import ProgressEvent
from .outputs import OutputRoot, Target
from .schema import JobSpec

TERMINAL = ("done", "failed", "cancelled")
MAX_QUEUED = 100
KEEP_FINISHED = 1000


class JobCancelled(WorldgenError):
    """Raised inside a running job when it was cancelled (or the server stops)."""


class QueueFull(WorldgenError):
    pass


class ServerStopping(WorldgenError):
    pass


# on_event(kind, job, detail): "queued", "started", "done", "failed", "cancelled" (the CLI logs them).
EventCallback = Callable[[str, "Job", str], None]


@dataclass(eq=False)
class Job:
    id: str
    spec: JobSpec
    target: Target
    backend: str
    created: float = field(default_factory=time.time)
    state: str = "queued"
    progress: Optional[ProgressEvent] = None
    error: Optional[str] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    device: Optional[str] = None
    files: tuple[str, ...] = ()
    digests: dict = field(default_factory=dict)  # file -> sha256, so a client can check a local copy
    revision: int = 0
    cancel_requested: bool = False

    def to_json(self, root: OutputRoot, position: Optional[int] = None) -> dict:
        folder = self.target.folder.relative_to(root.path).as_posix()
        prefix = "" if folder == "." else folder + "/"
        p = self.progress
        return {"id": self.id, "state": self.state, "revision": self.revision, "position": position,
                "progress": None if p is None else {"stage": p.stage, "done": p.done, "total": p.total,
                                                    "detail": p.detail},
                "error": self.error, "name": self.target.name, "dir": prefix.rstrip("/"),
                "scene": prefix + self.target.name, "glb": prefix + self.target.glb.name,
                "files": list(self.files), "path": str(self.target.folder), "identities": self._identities(),
                "sha256": dict(self.digests),
                "backend": self.backend, "device": self.device,
                "request": self.spec.record(), "created": self.created, "started": self.started,
                "finished": self.finished}


    def _identities(self) -> dict:
        from .outputs import file_identity

        identities = {}
        for relative in self.files:
            try:
                identities[relative] = file_identity(self.target.folder / relative)
            except OSError:  # gone from the root: the client downloads (and hears 410)
                pass
        return identities


class JobBoard:
    """Job records and the queue; every change bumps the job's revision and wakes the waiters."""

    def __init__(self, max_queued: int = MAX_QUEUED, keep_finished: int = KEEP_FINISHED) -> None:
        self._cond = threading.Condition()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: deque[Job] = deque()
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        self.max_queued = max_queued
        self.keep_finished = keep_finished

    @property
    def closed(self) -> bool:
        return self._closed

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` is called (under the board's lock: it must only schedule work) on every
        change, so the HTTP front's event loop can wake its waiters without a thread each."""
        with self._cond:
            self._listeners.append(listener)

    def _changed(self) -> None:
        self._cond.notify_all()
        for listener in self._listeners:
            listener()

    def add(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise ServerStopping("the server is shutting down; start it again with `worldgen serve`")
            if len(self._queue) >= self.max_queued:
                raise QueueFull(f"the queue is full ({self.max_queued} jobs waiting); retry when some have finished")
            self._jobs[job.id] = job
            self._queue.append(job)
            self._forget_old()
            self._changed()

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.state in TERMINAL]
        for job_id in finished[:max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job_id]

    def get(self, job_id: str) -> Optional[Job]:
        with self._cond:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> Optional[int]:
        """Jobs ahead of a queued one (None once it left the queue)."""
        with self._cond:
            try:
                return self._queue.index(job)
            except ValueError:
                return None

    def wait(self, job: Job, since: int, timeout: float) -> None:
        """Block until the job changes past revision ``since``, the board closes, or ``timeout``."""
        with self._cond:
            self._cond.wait_for(lambda: job.revision > since or self._closed, timeout=max(0.0, timeout))

    def jobs(self) -> list[Job]:
        with self._cond:
            return list(self._jobs.values())

    def counts(self) -> dict:
        with self._cond:
            counts = {state: 0 for state in ("queued", "running", *TERMINAL)}
            for job in self._jobs.values():
                counts[job.state] += 1
            return counts

    def update(self, job: Job, **changes) -> None:
        with self._cond:
            for key, value in changes.items():
                setattr(job, key, value)
            job.revision += 1
            self._changed()

    def take(self, device: Optional[str]) -> Optional[Job]:
        """The next queued job, now running on ``device``; None once the board is closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._closed)
            if self._closed:
                return None
            job = self._queue.popleft()
            job.state, job.started, job.device = "running", time.time(), device
            job.revision += 1
            self._changed()
            return job

    def cancel(self, job: Job) -> None:
        """A queued job ends at once; a running one stops at its next progress step."""
        with self._cond:
            if job.state == "queued":
                self._queue.remove(job)
                self._end(job, "cancelled", "cancelled before it started")
            elif job.state == "running":
                job.cancel_requested = True
                job.revision += 1
                self._changed()

    def finish(self, job: Job, state: str, error: Optional[str] = None, files: tuple[str, ...] = (),
               digests: Optional[dict] = None) -> None:
        with self._cond:
            job.files, job.digests = tuple(files), dict(digests or {})
            self._end(job, state, error)

    def _end(self, job: Job, state: str, error: Optional[str]) -> None:
        job.state, job.error, job.finished = state, error, time.time()
        job.revision += 1
        self._changed()

    def close(self) -> list[Job]:
        """Stop taking jobs: cancel the queued ones, ask running ones to stop. Returns the cancelled."""
        with self._cond:
            self._closed = True
            cancelled = list(self._queue)
            self._queue.clear()
            for job in cancelled:
                self._end(job, "cancelled", "the server shut down before the job started")
            for job in self._jobs.values():
                if job.state == "running":
                    job.cancel_requested = True
            self._changed()
            return cancelled


class Worker(threading.Thread):
    """Runs jobs one at a time on one loaded ``WorldPipeline`` (``instance``), never reloading it."""

    def __init__(self, board: JobBoard, root: OutputRoot, backend_name: str, instance, device: Optional[str],
                 on_event: Optional[EventCallback] = None) -> None:
        super().__init__(name=f"worldgen-worker-{device or 'default'}", daemon=True)
        self.board, self.root = board, root
        self.backend_name, self.instance, self.device = backend_name, instance, device
        self.on_event = on_event
        self.current: Optional[Job] = None

    def run(self) -> None:
        while True:
            job = self.board.take(self.device)
            if job is None:
                return
            self.current = job
            self._event("started", job)
            try:
                self._run(job)
            finally:
                self.current = None

    def _event(self, kind: str, job: Job, detail: str = "") -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, job, detail)
            except Exception:  # a logging fault must not take a worker down
                pass

    def _run(self, job: Job) -> None:
        from .worlds import make_world

        staging, files, digests, detail = None, (), {}, ""
        try:
            staging = self.root.staging(job.id)
            scene_tmp, glb_tmp = staging / job.target.name, staging / job.target.glb.name
            make_world(self.instance, job.spec.request, scene_tmp, glb_tmp, self._progress(job))
            digests = {relative: file_digest(staging / relative) for relative in _staged_files(staging)}
            files = self.root.publish(job.target, scene_tmp, glb_tmp)
            digests = {relative: digests[relative] for relative in files if relative in digests}
            state, error = "done", None
        except JobCancelled:
            state, error = "cancelled", "cancelled while it ran; nothing was written"
        except Exception as exc:  # one job's fault, whatever it is, must not end the server
            state, error = "failed", job_error(exc)
            detail = "" if isinstance(exc, WorldgenError) else traceback.format_exc()
            free_memory()
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            # Free the name before the job reads as ended, so a client may reuse it at once.
            self.root.release(job.target)
        self.board.finish(job, state, error, files=files, digests=digests)
        self._event(state, job, detail)

    def _progress(self, job: Job):
        def progress(event: ProgressEvent) -> None:
            if job.cancel_requested:
                raise JobCancelled("cancelled")
            self.board.update(job, progress=event)

        return progress


def _staged_files(staging) -> list[str]:
    """The regular files of a world still in staging (links are never followed nor listed)."""
    found = []
    for folder, _dirs, names, dir_fd in os.fwalk(staging):
        for name in names:
            if stat.S_ISREG(os.lstat(name, dir_fd=dir_fd).st_mode):
                found.append(os.path.relpath(os.path.join(folder, name), staging).replace(os.sep, "/"))
    return found


def file_digest(path) -> str:
    """sha256 of a file: what a client checks a same-machine copy against (a hostile server that
    cannot read a file cannot name its digest)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def job_error(exc: BaseException) -> str:
    """A failed job's one line: what the CLI prints for the same fault (``worldgen.world.advice``), except
    that an unknown fault's traceback is in the server's log rather than behind WORLDGEN_DEBUG."""
    from ..world.advice import known_fault, message_for, short

    if isinstance(exc, WorldgenError):
        return message_for(exc)
    return known_fault(exc) or f"internal error {type(exc).__name__}: {short(exc)}; the server's log has the traceback"


def free_memory() -> None:
    """After a failed job: give cached GPU memory back so an out-of-memory job does not doom the next."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
