"""JOBS files: prompts or recipes (JSONL, TOML ``[[job]]`` tables, plain text) -> checked ``Job``s.

Each job gets a deterministic name (its own, or a slug of its prompt plus its index) and a seed (its
own, or one derived from the batch seed and its name); neither depends on how many processes run.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..scene import jsonfiles
from ..world.outputs import slug
from ..errors import UserInputError
from ..validation import SEED_MAX, check_seed

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".toml": "toml", ".txt": "text"}
PROMPT_FIELDS = ("name", "prompt", "seed", "size", "span", "steps", "guidance", "negative", "modality", "scheduler")
RECIPE_FIELDS = ("name", "seed", "recipe")
ALL_FIELDS = tuple(dict.fromkeys(PROMPT_FIELDS + RECIPE_FIELDS))
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SEED_LIMIT = SEED_MAX + 1  # worldgen.validation's rule, as everywhere
DERIVED_SEED_LIMIT = 2**31  # derived seeds stay small enough for every RNG a backend might seed


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
    preset: Optional[str] = None  # the sampling preset, carried by each request (None: the backend's)


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
        """The ``GenerateRequest`` of a prompt job; raises ``UserInputError`` for bad values with the
        line `worldgen pano` and `worldgen serve` give for the same values (``WorldPipeline.request``)."""
        from ..api import WorldPipeline

        if self.recipe is not None:
            raise UserInputError(f"job {self.name} is a recipe job; it has no panorama request")
        return WorldPipeline.request(self.prompt or "", width=self.width, height=self.height, span=self.span_deg,
                                     seed=self.seed, steps=self.steps, guidance=self.guidance,
                                     negative_prompt=self.negative, modality=self.modality,
                                     scheduler=self.scheduler, preset=self.preset)

    def plan(self) -> dict:
        """A JSON-ready description (for OUT/.batch/jobs.json and --dry-run)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.recipe is not None:
            out = {k: out[k] for k in ("index", "line", "name", "seed")} | {"recipe": str(self.recipe)}
        return out


def derive_seed(batch_seed: int, name: str) -> int:
    """A job's seed from the batch seed and its name (never from the rank or the process count).
    sha256, not hash(): Python salts hash() per process, and every rank must agree."""
    digest = hashlib.sha256(f"worldgen-batch:{batch_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % DERIVED_SEED_LIMIT


def load_jobs(path: str | Path, defaults: JobDefaults = JobDefaults(), batch_seed: int = 0) -> list[Job]:
    """Parse and check a JOBS file. Structure is checked here, for the whole file, with the line of
    each fault (objects, known fields, prompt or recipe, name, seed, the prompt's and size's form);
    panorama values (their types and ranges) are checked per job by the request model when it runs,
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
    """One job from its JSON-like fields, with every message prefixed by ``where`` (the JOBS file
    parser's check of a line; its panorama values are the request model's, see ``_value``)."""
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
    values = {key: _value(fields, key, default, where) for key, default in (
        ("span", defaults.span_deg), ("steps", defaults.steps), ("guidance", defaults.guidance),
        ("negative", defaults.negative), ("modality", defaults.modality))}
    scheduler = _value(fields, "scheduler", None, where)
    return Job(index=index, line=line, name=name, seed=derive_seed(batch_seed, name) if seed is None else seed,
               prompt=prompt, width=width, height=height, span_deg=values["span"], steps=values["steps"],
               guidance=values["guidance"], negative=values["negative"], modality=values["modality"],
               scheduler=defaults.scheduler if scheduler is None else scheduler, preset=defaults.preset)


def _value(fields: dict, key: str, default: Any, where: str) -> Any:
    """A panorama value as the line gives it: the request model (``worldgen.requests.WorldRequest``)
    checks its type and range when the job runs (or at --dry-run), so one bad job fails alone, with the
    line `pano` and the server give. What JSON cannot hold (a TOML date) is refused now."""
    value = fields.get(key, default)
    if value is None or isinstance(value, (str, int, float, bool, list)):
        return value
    from ..requests import check_field

    try:
        check_field(key, value)
    except UserInputError as exc:
        raise UserInputError(f"{where}: {exc}") from None
    raise UserInputError(f"{where}: {key} must be a JSON value, not {type(value).__name__}")


def _string(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str):
        raise UserInputError(f"{where}: {field} must be a string, got {json.dumps(value)}")
    return value


def _size(value: Any, where: str) -> tuple[int, int]:
    """"WIDTHxHEIGHT" or [WIDTH, HEIGHT] (the request model's form, ``size_from_text``); the sides
    themselves are checked when the job runs."""
    from ..requests import size_from_text

    try:
        width, height = size_from_text(value)
    except UserInputError as exc:
        raise UserInputError(f"{where}: {exc}") from None
    return width, height
