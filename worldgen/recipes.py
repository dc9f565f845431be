"""Scene recipes: a TOML file that describes a whole world, run by `worldgen build scenes/NAME.toml`.

A recipe names the panorama (prompt, negative prompt, seed, size, span, modality), its region
prompts, the objects placed into it, its refinement passes and its exports::

    prompt = "a misty fjord at dawn, steep cliffs"
    seed = 7
    size = "2048x512"

    [backend]                  # optional: name = "auto" | "jointnet" | "procedural", model, ...
    model = "rgbd"

    [[region]]                 # zero or more: azimuth = [A, B] (+ elevation) or mask = "file.png"
    azimuth = [0, 90]
    prompt = "a red lighthouse on a cliff"

    [[place]]                  # zero or more: an object at a distance (see worldgen.geometry.placement)
    prompt = "a wooden cabin"
    azimuth = 40
    distance = 12
    width = 8

    [[refine]]                 # zero or more: SDEdit passes (scale, strength, keep, steps, ...)
    scale = 2

    [[export]]                 # default: one GLB; format = "glb" | "ply" | "splat" | a plugin
    format = "glb"

Validation is a schema (``WORLD_FIELDS`` and the ``*_FIELDS`` tables below): every problem is
reported as ``FILE:LINE: FIELD: what is wrong, and the fix``. tomllib keeps no positions, so a
field's line is found by scanning the source for its key inside its table (``_SourceLines``).

Running goes through the same code as the single commands: ``worldgen.world.generate_world``
(as `worldgen pano`), ``worldgen.geometry.placement.place_object`` (as `worldgen place`), the backend's
``refine`` (as `worldgen refine`) and ``worldgen.export_files.export_to_file`` (as `worldgen export`).
``build_for_batch`` is the hook `worldgen batch` calls for ``recipe = "..."`` jobs.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Optional

from .errors import UserInputError, WorldgenError
from .sampler.presets import PRESETS

SCENES_DIR = "scenes"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_RECIPE_BYTES = 1 << 20
Note = Callable[[str], None]


# Errors ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Issue:
    """One problem in a recipe: where (line 0 = the file as a whole), which field, what to do."""

    line: int
    field: str
    message: str

    def text(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class RecipeError(UserInputError):
    """A recipe that does not validate. ``issues`` lists every problem found; the message is the first."""

    def __init__(self, source: str, issues: list[Issue]) -> None:
        self.source = source
        self.issues = issues
        more = len(issues) - 1
        tail = (f" (and {more} more problem{'s' if more > 1 else ''}; `worldgen build {source} --dry-run` lists them)"
                if more else "")
        super().__init__(issues[0].text(source) + tail)

    def lines(self) -> list[str]:
        return [issue.text(self.source) for issue in self.issues]


class _Invalid(Exception):
    """A field's value is wrong; the message says what to write instead."""


# Where each key is in the source ------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*(\"[^\"]+\"|'[^']+'|[A-Za-z0-9_\-]+)\s*=")


class _SourceLines:
    """Line numbers of tables and keys, from the TOML text (tomllib reports none).

    Keys are indexed by table: () for the top level, ("backend",) for ``[backend]``, ("region", k)
    for the k-th ``[[region]]``. Lines inside multi-line strings are skipped."""

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple, int] = {}
        self.tables: dict[tuple, int] = {}
        counts: dict[str, int] = {}
        table: tuple = ()
        in_string: Optional[str] = None
        for number, raw in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if raw.count(in_string) % 2 == 1:
                    in_string = None
                continue
            array = _ARRAY_HEADER.match(raw)
            header = None if array else _HEADER.match(raw)
            if array:
                name = array.group(1).strip().strip("\"'")
                index = counts.get(name, 0)
                counts[name] = index + 1
                table = (name, index)
                self.tables[table] = number
                continue
            if header:
                table = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
                self.tables[table] = number
                continue
            key = _KEY.match(raw)
            if key:
                self.keys.setdefault((table, key.group(1).strip("\"'")), number)
                for quote in ('"""', "'''"):
                    if raw.count(quote) % 2 == 1:
                        in_string = quote

    def line(self, table: tuple, key: Optional[str] = None) -> int:
        """The line of ``key`` in ``table`` (else the table's header, else the key holding an inline
        array of such tables, else 0)."""
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        if table in self.tables:
            return self.tables[table]
        if table and ((), table[0]) in self.keys:  # an inline array: `region = [{...}, ...]`
            return self.keys[((), table[0])]
        return 0


# Field checks --------------------------------------------------------------------------------------

def _string(value: Any, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be text in quotes, got {_show(value)}")
    if not allow_empty and not value.strip():
        raise _Invalid("must not be empty")
    return value


def _integer(lo: Optional[int] = None, hi: Optional[int] = None):
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f"must be a whole number, got {_show(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _Invalid(f"{value} is outside {lo}..{hi}")
        return value
    return check


def _number(lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False):
    def check(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _Invalid(f"must be a number, got {_show(value)}")
        value = float(value)
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise _Invalid(f"{value:g} must be {'above' if lo_open else 'at least'} {lo:g}")
        if hi is not None and value > hi:
            raise _Invalid(f"{value:g} must be at most {hi:g}")
        return value
    return check


def _rule(field: str, spanlike: bool = False):
    """A field checked by ``worldgen.validation`` (the rules the CLI, batch and requests use too)."""
    from . import validation

    def check(value: Any):
        try:
            if spanlike:
                return validation.check_span(value, "")
            return validation.check(field, value, "")
        except UserInputError as exc:
            raise _Invalid(str(exc).strip()) from None
    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {_show(value)}")
    return value


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            value = [int(p) for p in parts]
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        from .validation import check_size

        try:
            return check_size(value[0], value[1], "")
        except UserInputError as exc:
            raise _Invalid(str(exc).strip()) from None
    raise _Invalid(f"must be \"WIDTHxHEIGHT\" or [WIDTH, HEIGHT], e.g. \"2048x512\", got {_show(value)}")


def _pair(lo: float, hi: float):
    def check(value: Any) -> tuple[float, float]:
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise _Invalid(f"must be two numbers in degrees, e.g. [0, 90], got {_show(value)}")
        if not all(lo <= v <= hi for v in value):
            raise _Invalid(f"{value[0]:g}, {value[1]:g} must lie in {lo:g}..{hi:g} degrees")
        return float(value[0]), float(value[1])
    return check


def _modality(value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not 1 <= len(names) <= 2 or not all(isinstance(n, str) for n in names):
        raise _Invalid(f"must be a modality name or a list of two, e.g. \"depth\" or [\"depth\", \"normal\"], "
                       f"got {_show(value)}")
    if len(set(names)) != len(names):
        raise _Invalid("lists the same modality twice")
    from .registry import get_registry

    registry = get_registry()
    for name in names:
        try:
            registry.modality(name)
        except WorldgenError as exc:
            raise _Invalid(" ".join(str(exc).split())) from None
    return tuple(names)


def _relative_file(value: Any) -> str:
    """A path inside the recipe's (or the output's) folder: relative, no '..'."""
    text = _string(value, allow_empty=False)
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", text):
        raise _Invalid(f"{text!r} must be a relative path inside the recipe's folder (no '..', not absolute)")
    return text


def _choice(*allowed: str):
    def check(value: Any) -> str:
        if value not in allowed:
            raise _Invalid(f"{_show(value)} is not one of {', '.join(allowed)}")
        return value
    return check


def _table(value: Any) -> dict:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a table, e.g. {{ step = 2 }}, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Field:
    check: Callable[[Any], Any]
    required: bool = False
    help: str = ""


# The schema -----------------------------------------------------------------------------------------

WORLD_FIELDS: dict[str, Field] = {
    "name": Field(_string, help="the scene's name (default: the file name)"),
    "description": Field(_string, help="what the recipe shows (printed by --dry-run)"),
    "prompt": Field(lambda v: _string(v, allow_empty=False), required=True, help="the panorama's prompt"),
    "negative": Field(_string, help="negative prompt"),
    "seed": Field(_rule("seed"), help="random seed"),
    "size": Field(_size, help="\"WIDTHxHEIGHT\" in pixels"),
    "span": Field(_rule("span", spanlike=True), help="horizontal span in degrees"),
    "modality": Field(_modality, help="\"depth\", or [\"depth\", \"normal\"] for three modalities"),
    "steps": Field(_rule("steps"), help="denoising steps (default: the preset's, 50 or 14)"),
    "guidance": Field(_rule("guidance"), help="classifier-free guidance"),
    "scheduler": Field(_string, help="ddim, dpm++, unipc, ..."),
}
TABLES = ("backend", "region", "place", "refine", "export")
BACKEND_FIELDS: dict[str, Field] = {
    "name": Field(_string, help="auto, jointnet, procedural, or a plugin's name"),
    "model": Field(_string, help="JointNet checkpoint: a registered name or a folder"),
    "base": Field(_string, help="Stable Diffusion 2.1-base folder"),
    "extra_model": Field(_string, help="a second checkpoint sharing the RGB branch (three modalities)"),
    "region_mode": Field(_choice("blend", "window"), help="how region prompts condition windows"),
    "dtype": Field(_choice("float32", "float16", "bfloat16")),
    "device": Field(_string),
    "window_batch": Field(_integer(1)),
    "preset": Field(_choice(*PRESETS), help="sampling recipe: published (default) or fast, as `pano --preset`"),
    "speed": Field(_string),
    "memory": Field(_string),
}
REGION_FIELDS: dict[str, Field] = {
    "prompt": Field(lambda v: _string(v, allow_empty=False), required=True),
    "azimuth": Field(_pair(0, 360), help="[START, END] degrees; START > END wraps through 0"),
    "elevation": Field(_pair(-90, 90), help="[LOW, HIGH] degrees above the horizon"),
    "mask": Field(_relative_file, help="mask image, white = the region"),
    "weight": Field(_rule("weight")),
    "feather": Field(_rule("feather"), help="soft edge width in degrees"),
}
PLACE_FIELDS: dict[str, Field] = {
    "prompt": Field(lambda v: _string(v, allow_empty=False), required=True),
    "distance": Field(_rule("distance"), required=True, help="metres"),
    "azimuth": Field(_number(-360, 720), help="degrees"),
    "width": Field(_rule("metres"), help="metres"),
    "height": Field(_rule("metres"), help="metres"),
    "lift": Field(_rule("lift"), help="metres above the ground"),
    "shape": Field(_choice("flat", "curved", "round")),
    "mask": Field(_relative_file),
    "occlude": Field(_boolean),
    "border": Field(_integer(0, 256), help="pixels"),
    "border_strength": Field(_number(0, 1, lo_open=True)),
    "steps": Field(_rule("steps")),
    "guidance": Field(_rule("guidance")),
    "negative": Field(_string),
}
REFINE_FIELDS: dict[str, Field] = {
    "scale": Field(_rule("scale")),
    "size": Field(_size),
    "strength": Field(_rule("strength")),
    "keep": Field(_choice("image", "modality")),
    "steps": Field(_rule("steps")),
    "guidance": Field(_rule("guidance")),
    "prompt": Field(_string),
    "negative": Field(_string),
    "method": Field(_choice("auto", "masked", "blend")),
}
EXPORT_FIELDS: dict[str, Field] = {
    "format": Field(_string, required=True, help="glb, ply, splat, or a plugin's"),
    "path": Field(_relative_file, help="file name, relative to the output folder"),
    "options": Field(_table, help="the exporter's options"),
}
TABLE_FIELDS = {"backend": BACKEND_FIELDS, "region": REGION_FIELDS, "place": PLACE_FIELDS,
                "refine": REFINE_FIELDS, "export": EXPORT_FIELDS}


# The validated recipe ---------------------------------------------------------------------------------

@dataclass
class ExportStep:
    format: str
    path: Optional[str] = None
    options: dict = field(default_factory=dict)


@dataclass
class PlaceStep:
    placement: Any  # worldgen.geometry.placement.Placement
    steps: Optional[int] = None
    guidance: Optional[float] = None
    negative: Optional[str] = None


@dataclass
class RefineStep:
    fields: dict  # RefineRequest keyword arguments (beyond the shared steps/guidance defaults)
    size: Optional[tuple[int, int]] = None

    def request(self, recipe: "Recipe", steps: Optional[int] = None, seed: int = 0,
                options: Optional["BuildOptions"] = None):
        """The ``RefineRequest`` of this pass: unset fields come from the recipe (steps, guidance,
        negative prompt); ``steps`` overrides them all (a quick preview)."""
        from .sampler.requests import RefineRequest

        fields = dict(self.fields)
        fields.setdefault("steps", recipe.sampling(options).steps)
        fields.setdefault("guidance", recipe.guidance)
        fields.setdefault("negative_prompt", recipe.negative)
        fields.setdefault("scale", 1.0 if self.size else 2.0)
        if steps is not None:
            fields["steps"] = steps
        width, height = self.size or (None, None)
        return RefineRequest(**fields, width=width, height=height, seed=seed, scheduler=recipe.scheduler)


@dataclass
class Recipe:
    """A validated recipe. Sizes and counts are checked; what depends on a model or on the generated
    world (a placement hidden behind a hill, a missing checkpoint) is checked when it runs."""

    path: Path
    text: str
    name: str
    prompt: str
    description: str = ""
    negative: str = ""
    seed: int = 0
    width: int = 2048
    height: int = 512
    span_deg: float = 360.0
    modalities: tuple[str, ...] = ("depth",)
    steps: Optional[int] = None  # None: the preset's
    guidance: float = 7.5
    scheduler: Optional[str] = None
    backend: dict = field(default_factory=dict)
    regions: list = field(default_factory=list)
    places: list[PlaceStep] = field(default_factory=list)
    refines: list[RefineStep] = field(default_factory=list)
    exports: list[ExportStep] = field(default_factory=list)

    @property
    def backend_name(self) -> str:
        return self.backend.get("name", "auto")

    @property
    def backend_settings(self) -> dict:
        return {k: v for k, v in self.backend.items() if k != "name"}

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def sampling(self, options: Optional["BuildOptions"] = None):
        """Preset, steps and scheduler of this recipe's run, resolved as `pano` resolves them: the
        command line's --preset/--steps over the recipe's backend.preset/steps."""
        from .sampler.presets import resolve_sampling

        given = options.settings if options is not None else {}
        preset = given.get("preset") or self.backend.get("preset")
        steps = (options.steps if options is not None else None) or self.steps
        return resolve_sampling(preset, steps, self.scheduler)

    def request(self, seed: Optional[int] = None, backend_name: str = "jointnet",
                options: Optional["BuildOptions"] = None):
        """The ``GenerateRequest`` of the panorama (with its regions)."""
        from .backend import GenerateRequest

        modality = self.modalities[0]
        if backend_name == "procedural" and "normal" in self.modalities:
            modality = "normal"  # the procedural backend makes depth and derives normals from it
        return GenerateRequest(prompt=self.prompt, width=self.width, height=self.height, span_deg=self.span_deg,
                               seed=self.seed if seed is None else seed, steps=self.sampling(options).steps,
                               guidance=self.guidance,
                               negative_prompt=self.negative, modality=modality, scheduler=self.scheduler,
                               regions=list(self.regions))


def load_recipe(path: str | Path, *, size: Optional[tuple[int, int]] = None) -> Recipe:
    """Read and validate a recipe file; raises ``RecipeError`` listing every problem.

    ``size`` replaces the recipe's panorama size (a quick preview of the same world)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserInputError(f"{path} does not exist; give a recipe file such as {SCENES_DIR}/alpine-lake.toml") from None
    except OSError as exc:
        raise UserInputError(f"{path} is not readable ({exc})") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise UserInputError(f"{path} is {len(raw)} bytes; a recipe is at most {MAX_RECIPE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"{path} is not UTF-8 text; save the recipe as UTF-8") from None
    return parse_recipe(text, source=str(path), base_dir=path.parent, default_name=path.stem, size=size, path=path)


def parse_recipe(text: str, *, source: str = "recipe", base_dir: Path = Path("."), default_name: str = "world",
                 size: Optional[tuple[int, int]] = None, path: Optional[Path] = None) -> Recipe:
    import tomllib

    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise RecipeError(source, [Issue(0, "", "nested too deeply to read; write the recipe as flat tables, "
                                                f"see {SCENES_DIR}/ for examples")]) from None
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        line = re.search(r"line (\d+)", message)
        number = int(line.group(1)) if line else (len(text.splitlines()) if "end of document" in message else 0)
        raise RecipeError(source, [Issue(number, "",
                                  f"not valid TOML ({message}); see {SCENES_DIR}/ for examples")]) from None
    return _Validator(data, text, source, base_dir).recipe(default_name, size, path or Path(source))


class _Validator:
    """Checks one parsed recipe against the schema, collecting every problem with its line."""

    def __init__(self, data: dict, text: str, source: str, base_dir: Path) -> None:
        self.data = data
        self.text = text
        self.source = source
        self.base_dir = base_dir
        self.lines = _SourceLines(text)
        self.issues: list[Issue] = []

    def problem(self, table: tuple, key: Optional[str], name: str, message: str) -> None:
        self.issues.append(Issue(self.lines.line(table, key), name, message))

    def fields(self, values: Any, schema: dict[str, Field], table: tuple, label: str) -> dict:
        """The checked values of one table (bad or unknown fields are reported and left out)."""
        import difflib

        if not isinstance(values, dict):
            self.problem(table, None, label, f"must be a table, got {_show(values)}")
            return {}
        out = {}
        for key, value in values.items():
            name = f"{label}.{key}" if label else key
            spec = schema.get(key)
            if spec is None:
                if not label and key in TABLES:
                    continue
                close = difflib.get_close_matches(key, list(schema) + ([] if label else list(TABLES)), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(schema)}"
                self.problem(table, key, name, f"unknown field; {hint}")
                continue
            try:
                out[key] = spec.check(value)
            except _Invalid as exc:
                self.problem(table, key, name, str(exc))
        for key, spec in schema.items():
            if spec.required and key not in values:
                self.problem(table, None, f"{label}.{key}" if label else key,
                             f"is required ({spec.help or 'add it'})")
        return out

    def array(self, name: str) -> list[tuple[tuple, str, Any]]:
        tables = self.data.get(name, [])
        if isinstance(tables, dict):
            tables = [tables]
        if not isinstance(tables, list):
            self.problem((), name, name, f"must be a list of tables: write each as [[{name}]]")
            return []
        return [((name, k), f"{name}[{k + 1}]", t) for k, t in enumerate(tables)]

    def recipe(self, default_name: str, size: Optional[tuple[int, int]], path: Path) -> Recipe:
        world = self.fields(self.data, WORLD_FIELDS, (), "")
        name = world.get("name", default_name)
        if not NAME_RE.fullmatch(name):
            if "name" in world:
                self.problem((), "name", "name", "must be 1-100 letters, digits, '.', '_' or '-', starting with a "
                                                 "letter or digit (it names the scene folder)")
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:100] or "world"
        width, height = size or world.get("size", (2048, 512))
        span = world.get("span", 360.0)
        backend = {}
        if "backend" in self.data:
            table = self.data["backend"]
            table = {"name": table} if isinstance(table, str) else table  # backend = "procedural"
            backend = self.fields(table, BACKEND_FIELDS, ("backend",), "backend")
        modalities = world.get("modality", ("depth",))
        jointnet = backend.get("name") == "jointnet" or (backend.get("name", "auto") == "auto" and "model" in backend)
        if len(modalities) == 2 and jointnet and "extra_model" not in backend:
            self.problem((), "modality", "modality", "two modalities with JointNet need backend.extra_model "
                                                     "(a second checkpoint sharing the RGB branch)")
        recipe = Recipe(path=path, text=self.text, name=name, prompt=world.get("prompt", ""),
                        description=world.get("description", ""), negative=world.get("negative", ""),
                        seed=world.get("seed", 0), width=width, height=height, span_deg=span, modalities=modalities,
                        steps=world.get("steps"), guidance=world.get("guidance", 7.5),
                        scheduler=world.get("scheduler"), backend=backend)

        from .geometry.placement import Placement
        from .geometry.regions import Region, read_mask_image

        for table, label, values in self.array("region"):
            checked = self.fields(values, REGION_FIELDS, table, label)
            if not isinstance(values, dict) or len(checked) < len(values) or "prompt" not in checked:
                continue
            if ("azimuth" in checked) == ("mask" in checked):
                self.problem(table, None, label, "needs azimuth = [A, B] or mask = \"file.png\" (exactly one)")
                continue
            try:
                region = Region.from_dict(checked, self.base_dir)
                region.coverage(width, height, span)
            except UserInputError as exc:
                self.problem(table, "mask" if "mask" in checked else "azimuth", label, _plain(exc))
                continue
            recipe.regions.append(region)
        if recipe.regions:
            from .geometry.regions import condition_weights

            try:
                condition_weights(recipe.regions, width, height, span)
            except UserInputError as exc:
                self.problem(("region", 0), None, "region", _plain(exc))

        for table, label, values in self.array("place"):
            checked = self.fields(values, PLACE_FIELDS, table, label)
            if not isinstance(values, dict) or len(checked) < len(values) or "prompt" not in checked \
                    or "distance" not in checked:
                continue
            mask = None
            if "mask" in checked:
                try:
                    mask = read_mask_image(self.base_dir / checked["mask"]) > 0.5
                except UserInputError as exc:
                    self.problem(table, "mask", f"{label}.mask", _plain(exc))
                    continue
            try:
                placement = Placement(prompt=checked["prompt"], distance=checked["distance"],
                                      azimuth=checked.get("azimuth"), width=checked.get("width"),
                                      height=checked.get("height"), lift=checked.get("lift", 0.0),
                                      shape=checked.get("shape", "flat"), mask=mask, mask_source=checked.get("mask"),
                                      occlude=checked.get("occlude", True), border_px=checked.get("border", 8),
                                      border_strength=checked.get("border_strength", 0.5))
            except UserInputError as exc:
                self.problem(table, None, label, _plain(exc))
                continue
            recipe.places.append(PlaceStep(placement, checked.get("steps"), checked.get("guidance"),
                                           checked.get("negative")))

        current = (width, height)
        for table, label, values in self.array("refine"):
            checked = self.fields(values, REFINE_FIELDS, table, label)
            if not isinstance(values, dict) or len(checked) < len(values):
                continue
            if "scale" in checked and "size" in checked:
                self.problem(table, "size", f"{label}.size", "give scale or size, not both")
                continue
            step = _refine_step(checked)
            try:
                current = step.request(recipe).target_size(*current)
            except UserInputError as exc:
                self.problem(table, "scale" if "scale" in checked else "size", label, _plain(exc))
                continue
            recipe.refines.append(step)

        for table, label, values in self.array("export"):
            checked = self.fields(values, EXPORT_FIELDS, table, label)
            if not isinstance(values, dict) or len(checked) < len(values) or "format" not in checked:
                continue
            try:
                from .export_files import exporter_for

                spec = exporter_for(checked["format"])
                unknown = sorted(set(checked.get("options", {})) - set(spec.options))
                if unknown:
                    raise UserInputError(f"{spec.name} has no option {unknown[0]!r}; known: {', '.join(spec.options)}")
            except WorldgenError as exc:
                self.problem(table, "format" if "options" not in checked else "options", label, _plain(exc))
                continue
            recipe.exports.append(ExportStep(checked["format"], checked.get("path"), dict(checked.get("options", {}))))
        paths = [e.path or f"{name}{_extension(e.format)}" for e in recipe.exports]
        for k, p in enumerate(paths):
            if p in paths[:k]:
                self.problem(("export", k), "path", f"export[{k + 1}].path",
                             f"{p} is written by an earlier export too; give this one another path")
        if not recipe.exports:
            recipe.exports.append(ExportStep("glb"))

        if self.issues:
            self.issues.sort(key=lambda issue: issue.line or 10**9)
            raise RecipeError(self.source, self.issues)
        return recipe


def _plain(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _extension(fmt: str) -> str:
    from .export_files import exporter_for

    ext = exporter_for(fmt).extension
    return ext if ext[1:] == fmt else f".{fmt}{ext}"


def _refine_step(checked: dict) -> RefineStep:
    fields = {k: checked[k] for k in ("scale", "strength", "keep", "steps", "guidance", "prompt", "method")
              if k in checked}
    if "negative" in checked:
        fields["negative_prompt"] = checked["negative"]
    return RefineStep(fields, checked.get("size"))


# Running ------------------------------------------------------------------------------------------------

@dataclass
class BuildOptions:
    """What the command line (or a batch) changes about a recipe's run."""

    backend: Optional[str] = None  # overrides backend.name
    settings: dict = field(default_factory=dict)  # overrides backend settings (model, device, dtype, ...)
    seed: Optional[int] = None
    steps: Optional[int] = None  # every diffusion step count (a quick preview)


def resolve_backend(recipe: Recipe, options: BuildOptions, note: Note = lambda text: None):
    """(backend spec, load settings) for the recipe's [backend] table with the command-line overrides."""
    from .registry import get_registry

    settings = {**recipe.backend_settings, **{k: v for k, v in options.settings.items() if v is not None}}
    name = options.backend or recipe.backend_name
    registry = get_registry()
    if name == "auto":
        spec = None
        if settings.get("model"):
            spec = registry.backend("jointnet")
        else:
            try:
                jointnet = registry.backend("jointnet")
                if jointnet.available is not None and jointnet.available():
                    spec = jointnet
            except WorldgenError:
                spec = None
        if spec is None:
            spec = registry.backend("procedural")
            note("no JointNet weights are installed, so this recipe runs on the offline procedural backend "
                 "(not diffusion); pass --model or register one with `worldgen models add`")
    else:
        spec = registry.backend(name)
    if spec.settings:
        dropped = sorted(k for k in settings if k not in spec.settings)
        if dropped:
            note(f"the {spec.name} backend ignores {', '.join(dropped)}")
        settings = {k: v for k, v in settings.items() if k in spec.settings}
    else:
        if settings:
            note(f"the {spec.name} backend takes no settings; ignoring {', '.join(sorted(settings))}")
        settings = {}
    settings = recipe.sampling(BuildOptions(settings=settings, steps=options.steps)).settings_for(spec, settings)
    if len(recipe.modalities) == 2 and spec.name == "jointnet" and not settings.get("extra_model"):
        raise UserInputError(f"{recipe.path}: modality {list(recipe.modalities)} with JointNet needs backend.extra_model "
                             f"(a second checkpoint sharing the RGB branch); or set modality = \"depth\"")
    return spec, settings


def plan(recipe: Recipe, glb: Path, options: BuildOptions = BuildOptions(), backend_label: Optional[str] = None,
         tasks: tuple[str, ...] = ("generate", "refine", "edit")) -> list[str]:
    """The steps a build will take, as printable lines (``--dry-run``). ``tasks``: what the chosen
    backend can do (its spec's ``tasks``); steps it cannot do are shown as they will run."""
    seed = recipe.seed if options.seed is None else options.seed
    steps = recipe.sampling(options).steps
    label = backend_label or options.backend or recipe.backend_name
    out = [f"recipe {recipe.path} ({recipe.name}, sha256 {recipe.digest[:12]})"]
    if recipe.description:
        out.append(f"  {recipe.description}")
    n = 1
    out.append(f"{n}. generate {recipe.width}x{recipe.height}, {recipe.span_deg:g} deg, {' + '.join(recipe.modalities)}, "
               f"{steps} steps, guidance {recipe.guidance:g}, seed {seed}, backend {label}")
    out.append(f"     prompt: {recipe.prompt}")
    if recipe.negative:
        out.append(f"     negative: {recipe.negative}")
    for k, region in enumerate(recipe.regions, start=1):
        out.append(f"     region {k}: {region.label()}")
    for place in recipe.places:
        n += 1
        p = place.placement
        where = (f"mask {p.mask_source}" if p.mask is not None
                 else f"azimuth {p.azimuth:g} deg, {p.width:g} m wide, {p.height or p.width:g} m tall")
        out.append(f"{n}. place \"{p.prompt}\" at {p.distance:g} m, {where}, {p.shape}"
                   + (f", lifted {p.lift:g} m" if p.lift else "")
                   + ("" if "edit" in tasks else " (painted as a placeholder: the backend cannot inpaint)"))
    size = (recipe.width, recipe.height)
    for step in recipe.refines:
        n += 1
        request = step.request(recipe, options.steps, options=options)
        size = request.target_size(*size)
        keep = f", keep {request.keep}" if request.keep else ""
        skipped = "" if "refine" in tasks else " (skipped: the backend cannot refine)"
        out.append(f"{n}. refine to {size[0]}x{size[1]}, strength {request.strength:g}, {request.steps} steps"
                   f"{keep}{skipped}")
    for export in recipe.exports:
        n += 1
        out.append(f"{n}. export {export.format} -> {_export_path(recipe, export, glb, glb.parent)}")
    out.append(f"scene folder: {glb.with_suffix('')}/")
    return out


def _export_path(recipe: Recipe, export: ExportStep, glb: Path, folder: Path) -> Path:
    if export.format == "glb" and export.path is None:
        return glb
    return folder / (export.path or f"{glb.stem}{_extension(export.format)}")


def _checked_export_path(recipe: Recipe, export: ExportStep, glb: Path, folder: Path) -> Path:
    """An ``[[export]]`` path the recipe named: inside the output folder once every symlink is resolved,
    and never a file the recipe itself reads (the recipe, its masks)."""
    from .output_paths import check_output_path

    target = _export_path(recipe, export, glb, folder)
    if export.path is None:
        return target  # the user's own -o, or a name worldgen chose inside the folder
    check_output_path(target, what=f"{recipe.path}: export path {export.path!r}", confine_to=folder,
                      managed=folder if folder != glb.parent else None)
    resolved = target.resolve()
    inputs = [Path(recipe.path)] + [Path(recipe.path).parent / r.source for r in recipe.regions
                                    if getattr(r, "source", None)]
    if any(resolved == p.resolve() for p in inputs if p.exists()):
        raise UserInputError(f"{recipe.path}: export path {export.path!r} would overwrite a file the recipe reads; "
                             f"give the export another name")
    return target


def build(recipe: Recipe, glb: Path, options: BuildOptions = BuildOptions(), *, progress=None,
          note: Note = lambda text: None, backend=None, spec=None, export_folder: Optional[Path] = None):
    """Run the recipe: the scene goes to ``glb`` without its suffix, the GLB to ``glb``, other exports
    beside it (or into ``export_folder``). Returns the scene. ``backend``/``spec`` skip loading.

    The scene is built in a hidden folder beside its destination and renamed into place when every
    step has succeeded, so a failed build leaves no half-made scene behind (and can simply be rerun)."""
    import os
    import shutil
    import tempfile

    from .scene.manifest import MANIFEST_NAME

    from .scene.store import Scene

    scene_dir = glb.with_suffix("")
    if scene_dir.exists() and ((scene_dir / MANIFEST_NAME).exists() or any(scene_dir.iterdir())):
        raise UserInputError(f"{scene_dir} already holds a scene; pick another -o name or delete it")
    if spec is None or backend is None:
        spec, settings = resolve_backend(recipe, options, note)
        backend = spec.load(settings)
    scene_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{scene_dir.name}.", suffix=".building", dir=scene_dir.parent))
    try:
        snapshot = _run_steps(recipe, staging / scene_dir.name, options, backend, spec, progress, note)
        if scene_dir.exists():
            scene_dir.rmdir()  # empty, checked above
        os.rename(staging / scene_dir.name, scene_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    from .export_files import export_to_file

    folder = export_folder or glb.parent
    for export in recipe.exports:
        export_to_file(snapshot, export.format, _checked_export_path(recipe, export, glb, folder), export.options,
                       progress=progress, managed=export_folder)
    return Scene.open(scene_dir)


def _run_steps(recipe: Recipe, scene_dir: Path, options: BuildOptions, backend, spec, progress, note: Note):
    """Generate, place and refine into a new scene at ``scene_dir``; returns the final snapshot."""
    from .scene.atomic import atomic_write_text
    from .backend import Backend
    from .geometry.placement import can_edit, place_object
    from .world import generate_world

    seed = recipe.seed if options.seed is None else options.seed
    request = recipe.request(seed, spec.name, options)  # --steps and --preset resolved as `pano` does
    if recipe.regions and spec.name not in ("jointnet", "procedural"):
        note(f"the {spec.name} backend may not support region prompts")

    scene = generate_world(spec.name, backend, request, scene_dir, seed, export=lambda snapshot: None,
                           progress=progress)
    atomic_write_text(scene_dir / "recipe.toml", recipe.text)  # what made this scene, beside its manifest
    snapshot = scene.load()
    origin = {"recipe": str(recipe.path), "recipe_sha256": recipe.digest}

    painter = backend if can_edit(backend) else None
    if recipe.places and painter is None:
        note(f"the {spec.name} backend cannot paint, so placed objects are plain placeholder shapes at the right "
             f"depth; use a JointNet model to paint them")
    for k, place in enumerate(recipe.places, start=1):
        placement = _fit_mask(place.placement, snapshot.size)
        try:
            snapshot, info = place_object(
                snapshot, placement, painter, steps=options.steps or place.steps or recipe.sampling(options).steps,
                guidance=place.guidance if place.guidance is not None else recipe.guidance, seed=(seed + 1000 * k) % 2**64,
                scheduler=recipe.scheduler, negative_prompt=place.negative if place.negative is not None
                else recipe.negative, progress=progress)
        except UserInputError as exc:
            raise UserInputError(f"{recipe.path}: place[{k}] ({placement.prompt!r}): {_plain(exc)}") from None
        scene.add_version(snapshot, operation="place", seed=(seed + 1000 * k) % 2**64,
                          backend=spec.name if painter is not None else None,
                          params={"placement": info, **origin})

    can_refine = type(backend).refine is not Backend.refine
    for k, step in enumerate(recipe.refines, start=1):
        if not can_refine:
            note(f"refine pass {k} skipped: the {spec.name} backend cannot refine (use a JointNet model)")
            continue
        request_k = step.request(recipe, options.steps, seed=(seed + 2000 + k) % 2**64, options=options)
        snapshot = backend.refine(request_k, snapshot, progress)
        scene.add_version(snapshot, operation="refine", seed=request_k.seed, backend=spec.name,
                          backend_settings=backend.settings(),
                          params={"scale": request_k.scale, "strength": request_k.strength, "keep": request_k.keep,
                                  "steps": request_k.steps, "guidance": request_k.guidance, "pass": k, **origin})
    return snapshot


def _fit_mask(placement, size: tuple[int, int]):
    """A placement whose mask was drawn for the recipe's size, resized (nearest) to the scene's."""
    import dataclasses

    import numpy as np

    if placement.mask is None or placement.mask.shape == (size[1], size[0]):
        return placement
    h, w = placement.mask.shape
    rows = np.minimum(((np.arange(size[1]) + 0.5) * h / size[1]).astype(int), h - 1)
    cols = np.minimum(((np.arange(size[0]) + 0.5) * w / size[0]).astype(int), w - 1)
    return dataclasses.replace(placement, mask=placement.mask[rows][:, cols])


# worldgen batch -----------------------------------------------------------------------------------------

_BACKENDS: dict = {}  # one loaded backend, reused by consecutive recipe jobs with the same settings


def build_for_batch(recipe_path, scene_dir, glb, *, seed: int, settings: dict) -> None:
    """The `worldgen batch` hook for ``recipe = "..."`` jobs: build the recipe with the batch's seed and
    backend settings into ``scene_dir`` and ``glb`` (other exports go into ``scene_dir/exports/``)."""
    recipe = load_recipe(recipe_path)
    options = BuildOptions(settings=dict(settings or {}), seed=seed)
    spec, load_settings = resolve_backend(recipe, options)
    key = (spec.name, tuple(sorted((k, str(v)) for k, v in load_settings.items())))
    if key not in _BACKENDS:
        _BACKENDS.clear()
        _BACKENDS[key] = spec.load(load_settings)
    glb, scene_dir = Path(glb), Path(scene_dir)
    staged = glb.with_name(scene_dir.name + ".glb")  # build() puts the scene beside its GLB, named alike
    build(recipe, staged, options, backend=_BACKENDS[key], spec=spec, export_folder=scene_dir / "exports")
    if staged != glb:
        staged.replace(glb)
