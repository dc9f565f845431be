"""Batch world generation: a JOBS file in, one scene folder and GLB per job out, on any number of ranks.

The JOBS file lists prompts or scene recipes (JSONL, TOML ``[[job]]`` tables, or plain text). Each
job gets a deterministic name (its own, or a slug of its prompt plus its index) and a seed (its own,
or one derived from the batch seed and its name). Neither depends on how many processes run the
batch: rank ``r`` of ``w`` takes jobs ``i`` with ``i % w == r`` and writes ``OUT/NAME/`` and
``OUT/NAME.glb``, so a batch on two GPUs writes the same worlds as on one.

A world is built in ``OUT/.batch/tmp/`` and moved into place (GLB first, scene folder last), so
``OUT/NAME/scene.json`` never exists without its GLB. A restart therefore skips every job whose
scene is valid and whose GLB is present, and regenerates the rest. A job that fails is recorded with
its reason and the batch goes on. Each rank writes one status file per job under ``OUT/.batch/status/``;
rank 0 aggregates them into ``OUT/.batch/summary.json`` once every rank has finished.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .scene import jsonfiles
from .scene.atomic import atomic_write_text
from .errors import SceneError, UserInputError, WorldgenError
from .validation import SEED_MAX, check_seed

BATCH_DIR = ".batch"
SUMMARY_NAME = "summary.json"
PLAN_NAME = "jobs.json"
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".toml": "toml", ".txt": "text"}
PROMPT_FIELDS = ("name", "prompt", "seed", "size", "span", "steps", "guidance", "negative", "modality", "scheduler")
RECIPE_FIELDS = ("name", "seed", "recipe")
ALL_FIELDS = tuple(dict.fromkeys(PROMPT_FIELDS + RECIPE_FIELDS))
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SEED_LIMIT = SEED_MAX + 1  # worldgen.validation's rule, as everywhere
DERIVED_SEED_LIMIT = 2**31  # derived seeds stay small enough for every RNG a backend might seed
STAGING_SEP = "~"  # never in a job name, so NAME~* globs only that job's staging folders


# Jobs ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobDefaults:
    """What a prompt job does not say; the CLI fills these from its options (same defaults as `pano`)."""

    width: int = 2048
    height: int = 512
    span_deg: float = 360.0
    steps: int = 50
    guidance: float = 7.5
    negative: str = ""
    modality: str = "depth"
    scheduler: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class Job(JobDefaults):
    """One world to make. ``index`` is the job's position in the JOBS file (0-based); ``line`` is
    where it starts there, for messages. Exactly one of ``prompt`` and ``recipe`` is set; the
    panorama settings are ``JobDefaults``' fields, filled from the job's line or the batch options."""

    index: int
    line: int
    name: str
    seed: int
    prompt: Optional[str] = None
    recipe: Optional[Path] = None

    def request(self):
        """The ``GenerateRequest`` of a prompt job; raises ``UserInputError`` for bad values,
        exactly as `worldgen pano` would for the same options."""
        from .backend import GenerateRequest

        if self.recipe is not None:
            raise UserInputError(f"job {self.name} is a recipe job; it has no panorama request")
        return GenerateRequest(prompt=self.prompt or "", width=self.width, height=self.height, span_deg=self.span_deg,
                               seed=self.seed, steps=self.steps, guidance=self.guidance,
                               negative_prompt=self.negative, modality=self.modality, scheduler=self.scheduler)

    def plan(self) -> dict:
        """A JSON-ready description (for OUT/.batch/jobs.json and --dry-run)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.recipe is not None:
            out = {k: out[k] for k in ("index", "line", "name", "seed")} | {"recipe": str(self.recipe)}
        return out


def slug(text: str, limit: int = 6) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:limit]
    return "-".join(words)[:60].strip("-") or "world"


def derive_seed(batch_seed: int, name: str) -> int:
    """A job's seed from the batch seed and its name (never from the rank or the process count).
    sha256, not hash(): Python salts hash() per process, and every rank must agree."""
    digest = hashlib.sha256(f"worldgen-batch:{batch_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % DERIVED_SEED_LIMIT


def load_jobs(path: str | Path, defaults: JobDefaults = JobDefaults(), batch_seed: int = 0) -> list[Job]:
    """Parse and check a JOBS file. Structure and types are checked here, for the whole file, with
    the line of each fault; values (size multiples, step ranges) are checked per job when it runs,
    so one bad job fails alone (``--dry-run`` checks them all up front)."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(f"{path}: JOBS must be .jsonl (one JSON object per line), .toml ([[job]] tables) "
                             f"or .txt (one prompt per line), not {path.suffix or 'a file without extension'}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{path} does not exist; pass the JOBS file to run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} is not a readable UTF-8 text file ({exc})") from None
    return parse_jobs(text, fmt, source=str(path), base=path.parent, defaults=defaults, batch_seed=batch_seed)


def parse_jobs(text: str, fmt: str, *, source: str = "JOBS", base: Path = Path("."),
               defaults: JobDefaults = JobDefaults(), batch_seed: int = 0) -> list[Job]:
    entries = {"jsonl": _jsonl_entries, "toml": _toml_entries, "text": _text_entries}[fmt](text, source)
    if not entries:
        raise UserInputError(f"{source} lists no jobs; add one prompt per line (or [[job]] tables in TOML)")
    jobs = [_make_job(index, line, fields, source, base, defaults, batch_seed)
            for index, (line, fields) in enumerate(entries)]
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.get(job.name.lower())
        if other is not None:
            raise UserInputError(f"{source}:{job.line}: job name {job.name!r} is already used on line {other.line}; "
                                 f"give one of them another \"name\"")
        seen[job.name.lower()] = job
    return jobs


def _jsonl_entries(text: str, source: str) -> list[tuple[int, Any]]:
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            value = jsonfiles.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{source}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                 f"write one object per line, e.g. {{\"prompt\": \"a misty fjord\"}}") from None
        except ValueError as exc:  # nested too deeply
            raise UserInputError(f"{source}:{number}: not a usable job ({exc}); write one flat object per line") from None
        entries.append((number, {"prompt": value} if isinstance(value, str) else value))
    return entries


def _text_entries(text: str, source: str) -> list[tuple[int, Any]]:
    return [(number, {"prompt": raw.strip()}) for number, raw in enumerate(text.splitlines(), start=1)
            if raw.strip() and not raw.strip().startswith("#")]


def _toml_entries(text: str, source: str) -> list[tuple[int, Any]]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{source}: not valid TOML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise UserInputError(f"{source}: nested too deeply to read; list jobs as flat [[job]] tables") from None
    unknown = sorted(set(data) - {"job"})
    if unknown:
        raise UserInputError(f"{source}: unknown top-level key {unknown[0]!r}; list jobs as [[job]] tables "
                             f"(prompt = \"...\", seed = 1, size = \"2048x512\")")
    tables = data.get("job", [])
    if not isinstance(tables, list):
        raise UserInputError(f"{source}: \"job\" must be an array of tables; write each job as a [[job]] table")
    # tomllib keeps no positions: the k-th `[[job]]` header is the k-th job.
    headers = [n for n, raw in enumerate(text.splitlines(), start=1) if re.match(r"\s*\[\[\s*job\s*\]\]", raw)]
    lines = headers if len(headers) == len(tables) else [0] * len(tables)
    return list(zip(lines, tables))


def _make_job(index: int, line: int, fields: Any, source: str, base: Path, defaults: JobDefaults,
              batch_seed: int) -> Job:
    where = f"{source}:{line}" if line else f"{source}: job {index + 1}"
    return job_from_fields(fields, where, index=index, line=line, base=base, defaults=defaults, batch_seed=batch_seed)


def check_known_fields(fields: dict, known: Sequence[str], where: str) -> None:
    """Refuse a field not in ``known``, suggesting the closest known one (a typo must not be ignored)."""
    for key in fields:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known fields: {', '.join(known)}"
            raise UserInputError(f"{where}: unknown field {str(key)[:60]!r}{hint}")


def job_from_fields(fields: Any, where: str, *, index: int = 0, line: int = 0, base: Path = Path("."),
                    defaults: JobDefaults = JobDefaults(), batch_seed: int = 0) -> Job:
    """One job from its JSON-like fields, with every message prefixed by ``where``. The JOBS file
    parser and `worldgen serve` (worldgen.server.schema) both check their jobs with this."""
    if not isinstance(fields, dict):
        raise UserInputError(f"{where}: a job must be an object with a \"prompt\" (or a \"recipe\"), "
                             f"not {type(fields).__name__}")
    check_known_fields(fields, ALL_FIELDS, where)
    if ("prompt" in fields) == ("recipe" in fields):
        raise UserInputError(f"{where}: a job needs exactly one of \"prompt\" and \"recipe\"")

    name = fields.get("name")
    if name is not None:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise UserInputError(f"{where}: name {name!r} must be 1-100 letters, digits, '.', '_' or '-', "
                                 f"starting with a letter or digit (it names OUT/NAME/ and OUT/NAME.glb)")
    seed = fields.get("seed")
    if seed is not None:
        if isinstance(seed, float):  # 7.0 from a JSON writer is a float; a whole seed only
            raise UserInputError(f"{where}: seed {seed!r} must be a whole number from 0 to 2**64-1")
        seed = check_seed(seed, f"{where}: seed")

    if "recipe" in fields:
        extra = sorted(set(fields) - set(RECIPE_FIELDS))
        if extra:
            raise UserInputError(f"{where}: recipe jobs take only name, seed and recipe; put {extra[0]!r} "
                                 f"in the recipe file")
        recipe = _string(fields["recipe"], "recipe", where)
        name = name or f"{slug(Path(recipe).stem)}-{index:04d}"
        seed = derive_seed(batch_seed, name) if seed is None else seed
        return Job(index=index, line=line, name=name, seed=seed, recipe=base / recipe)

    prompt = _string(fields["prompt"], "prompt", where)
    name = name or f"{slug(prompt)}-{index:04d}"
    width, height = _size(fields["size"], where) if "size" in fields else (defaults.width, defaults.height)
    return Job(
        index=index, line=line, name=name,
        seed=derive_seed(batch_seed, name) if seed is None else seed,
        prompt=prompt, width=width, height=height,
        span_deg=_number(fields.get("span", defaults.span_deg), "span", where),
        steps=_integer(fields.get("steps", defaults.steps), "steps", where),
        guidance=_number(fields.get("guidance", defaults.guidance), "guidance", where),
        negative=_string(fields.get("negative", defaults.negative), "negative", where),
        modality=_string(fields.get("modality", defaults.modality), "modality", where),
        scheduler=(_string(fields["scheduler"], "scheduler", where) if fields.get("scheduler") is not None
                   else defaults.scheduler),
    )


def _string(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str):
        raise UserInputError(f"{where}: {field} must be a string, got {json.dumps(value)}")
    return value


def _integer(value: Any, field: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserInputError(f"{where}: {field} must be a whole number, got {json.dumps(value)}")
    return value


def _number(value: Any, field: str, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserInputError(f"{where}: {field} must be a number, got {json.dumps(value)}")
    return float(value)


def _size(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, str):
        parts = value.lower().split("x")
        # isdecimal, not isdigit: isdigit() passes "²", which int() refuses (as it does thousands of digits).
        if len(parts) == 2 and all(p.strip().isdecimal() and len(p) < 20 for p in parts):
            return int(parts[0]), int(parts[1])
    elif (isinstance(value, list) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return value[0], value[1]
    raise UserInputError(f"{where}: size {json.dumps(value)} must be \"WIDTHxHEIGHT\" or [WIDTH, HEIGHT], "
                         f"e.g. \"2048x512\"")


# Sharding --------------------------------------------------------------------------------------

def shard(jobs: Sequence[Job], rank: int, world: int) -> list[Job]:
    """The jobs rank ``rank`` of ``world`` runs: those whose index i has i % world == rank.
    By index, not list position, so the split does not depend on the order jobs are handed in."""
    if world < 1 or not 0 <= rank < world:
        raise UserInputError(f"rank {rank} of {world} processes is not a valid shard; rank runs from 0 to world-1")
    return sorted((job for job in jobs if job.index % world == rank), key=lambda job: job.index)


# Output layout ---------------------------------------------------------------------------------

def scene_path(out: Path, job: Job) -> Path:
    return Path(out) / job.name


def glb_path(out: Path, job: Job) -> Path:
    return Path(out) / f"{job.name}.glb"


def _batch_dir(out: Path) -> Path:
    return Path(out) / BATCH_DIR


def _status_path(out: Path, job: Job) -> Path:
    return _batch_dir(out) / "status" / f"{job.name}.json"


def _rank_path(out: Path, rank: int) -> Path:
    return _batch_dir(out) / "ranks" / f"rank-{rank}.json"


def existing_world(out: Path, job: Job) -> tuple[str, Optional[str]]:
    """("complete", None), ("absent", None) or ("conflict", why) for the job's place in ``out``.

    Complete means: scene.json opens and validates, the GLB is there, and for a prompt job the
    scene's first version has the job's prompt, seed and size (so an edited JOBS file never
    silently keeps an old world under a reused name). Later versions (refinements) are allowed.
    """
    from .scene.manifest import MANIFEST_NAME
    from .scene.store import Scene

    scene_dir, glb = scene_path(out, job), glb_path(out, job)
    if not scene_dir.exists():
        return "absent", None
    if not (scene_dir / MANIFEST_NAME).is_file():
        return "conflict", f"{scene_dir} exists but holds no scene; delete it to let the batch write job {job.name}"
    try:
        scene = Scene.open(scene_dir)
    except SceneError as exc:
        return "conflict", f"{exc} (delete {scene_dir} to regenerate it)"
    if not glb.is_file():
        return "conflict", f"{glb} is missing beside the scene {scene_dir}; delete {scene_dir} to regenerate both"
    if job.prompt is not None:
        first = scene.versions[0]
        want = {"prompt": job.prompt.strip(), "seed": job.seed, "size": [job.width, job.height]}
        have = {"prompt": first.get("prompt"), "seed": first.get("seed"), "size": first.get("size")}
        differs = [k for k in want if want[k] != have[k]]
        if differs:
            return "conflict", (f"{scene_dir} holds another world ({', '.join(differs)} differ from job line "
                                f"{job.line}); rename the job or delete the folder")
    return "complete", None


# Running ---------------------------------------------------------------------------------------

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


def write_plan(jobs: Sequence[Job], out: str | Path, world: int) -> Path:
    """OUT/.batch/jobs.json: every job as resolved (name, seed, parameters) and the rank that runs it."""
    plan = [job.plan() | {"rank": job.index % world} for job in jobs]
    return atomic_write_text(_batch_dir(Path(out)) / PLAN_NAME, json.dumps({"world": world, "jobs": plan}, indent=2) + "\n")


def summarize(jobs: Sequence[Job], out: str | Path, world: int) -> dict:
    """Aggregate the per-job status files and per-rank reports into OUT/.batch/summary.json."""
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
    ranks = []
    for rank in range(world):
        try:
            report = jsonfiles.loads(_rank_path(out, rank).read_text(encoding="utf-8"))
            if not isinstance(report, dict):
                raise ValueError("not an object")
            ranks.append(report)
        except (OSError, ValueError):
            ranks.append({"rank": rank, "missing": True})
    walls = [r["wall_seconds"] for r in ranks if "wall_seconds" in r]
    after_load = [r["wall_seconds"] - r.get("load_seconds", 0.0) for r in ranks if "wall_seconds" in r]
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
        "ranks": ranks,
    }
    atomic_write_text(_batch_dir(out) / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    return summary


def _stats(values: list[float]) -> Optional[dict]:
    if not values:
        return None
    return {"mean": round(sum(values) / len(values), 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "count": len(values)}


def _rate(done: int, seconds: Optional[float]) -> Optional[float]:
    return round(60.0 * done / seconds, 3) if seconds and seconds > 0 else None


def run_batch(jobs: Sequence[Job], out: str | Path, make_world: MakeWorld, *, rank: int = 0, world: int = 1,
              barrier: Optional[Callable[[], None]] = None,
              on_result: Optional[Callable[[JobResult, int, int], None]] = None) -> Optional[dict]:
    """Run this rank's shard, wait for every rank (``barrier``), and return the summary on rank 0
    (None on the others). With one process and no barrier, it simply runs every job in order."""
    out = Path(out)
    if rank == 0:
        write_plan(jobs, out, world)
    run_shard(jobs, out, make_world, rank=rank, world=world, on_result=on_result)
    if barrier is not None:
        barrier()
    return summarize(jobs, out, world) if rank == 0 else None


# The world makers ------------------------------------------------------------------------------

class PanoWorldMaker:
    """Makes prompt jobs the way `worldgen pano` does (same backend, request, scene and GLB export),
    with the backend loaded once per process on first use, and hands recipe jobs to the recipe hook.

    ``spec`` is a ``BackendSpec``; ``settings`` are its load settings (model, base, device, dtype, ...).
    ``export`` writes a snapshot to a GLB path; it defaults to worldgen's own GLB exporter.
    """

    def __init__(self, spec, settings: dict, export: Optional[Callable[[Any, Path], None]] = None) -> None:
        self.spec = spec
        self.settings = dict(settings)
        self._export = export
        self._instance = None
        self.load_seconds = 0.0

    @property
    def loaded(self) -> bool:
        """Whether the backend was loaded (a restart with nothing left to do never loads it)."""
        return self._instance is not None

    def backend(self):
        if self._instance is None:
            started = time.perf_counter()
            self._instance = self.spec.load(self.settings)
            self.load_seconds += time.perf_counter() - started
        return self._instance

    def __call__(self, job: Job, scene_dir: Path, glb: Path) -> None:
        if job.recipe is not None:
            recipe_hook()(job.recipe, scene_dir, glb, seed=job.seed, settings=self.settings)
            return
        from .world import generate_world

        request = job.request()  # value checks before any model is loaded
        generate_world(self.spec.name, self.backend(), request, scene_dir, job.seed,
                       export=lambda snapshot: self.export(snapshot, glb))

    def export(self, snapshot, glb: Path) -> None:
        if self._export is not None:
            self._export(snapshot, glb)
            return
        from .export_files import export_to_file

        export_to_file(snapshot, "glb", glb)

    def recover(self) -> None:
        """After a failed job: give cached GPU memory back so an out-of-memory job does not doom the next."""
        import gc
        import sys

        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


RECIPES_MODULE = "worldgen.recipes"
RECIPE_HOOK = "build_for_batch"


def recipe_hook() -> Callable[..., None]:
    """The function that builds a recipe job: ``worldgen.recipes.build_for_batch(recipe_path, scene_dir,
    glb_path, *, seed, settings)``, which must write a complete scene folder and GLB at those paths.
    Recipes ship with `worldgen build`; without that module recipe jobs fail with this message."""
    if importlib.util.find_spec(RECIPES_MODULE) is None:
        raise UserInputError("recipe jobs need `worldgen build`, not available in this version; "
                             "list the world as a prompt job instead")
    module = importlib.import_module(RECIPES_MODULE)
    hook = getattr(module, RECIPE_HOOK, None)
    if not callable(hook):
        raise UserInputError(f"{RECIPES_MODULE} has no {RECIPE_HOOK}(); this worldgen cannot run recipe jobs "
                             f"in a batch yet: run them one by one with `worldgen build`")
    return hook
