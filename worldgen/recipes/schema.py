"""The recipe schema: every field of every table, how it is checked, and where it is in the source.

Every problem is reported as ``FILE:LINE: FIELD: what is wrong, and the fix``. tomllib keeps no
positions, so a field's line is found by scanning the source for its key inside its table
(``_SourceLines``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable, Optional

from ..errors import UserInputError, WorldgenError

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
    names_field: bool = False  # the message names the field itself (the request model's own line)

    def text(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        shown = self.field and not self.names_field
        return f"{where}: {self.field}: {self.message}" if shown else f"{where}: {self.message}"


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


class _Refused(_Invalid):
    """A value the world request model refused: its line names the field itself, and is the line
    `pano`, batch jobs and the server give for the same value."""


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
    from .. import validation

    def check(value: Any):
        try:
            if spanlike:
                return validation.check_span(value, "")
            return validation.check(field, value, "")
        except UserInputError as exc:
            raise _Invalid(str(exc).strip()) from None
    return check


def _request_field(name: str):
    """A field of the panorama checked by the one request model (``worldgen.requests.WorldRequest``)."""

    def check(value: Any):
        from ..requests import check_field

        try:
            return check_field(name, value)
        except UserInputError as exc:
            raise _Refused(str(exc)) from None
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
        from ..validation import check_size

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
    from ..registry import get_registry

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
    "prompt": Field(_request_field("prompt"), required=True, help="the panorama's prompt"),
    "negative": Field(_request_field("negative"), help="negative prompt"),
    "seed": Field(_request_field("seed"), help="random seed"),
    "size": Field(_request_field("size"), help="\"WIDTHxHEIGHT\" in pixels"),
    "span": Field(_request_field("span"), help="horizontal span in degrees"),
    "modality": Field(_modality, help="\"depth\", or [\"depth\", \"normal\"] for three modalities"),
    "steps": Field(_request_field("steps"), help="denoising steps (default: the preset's, 50 or 14)"),
    "guidance": Field(_request_field("guidance"), help="classifier-free guidance"),
    "scheduler": Field(_request_field("scheduler"), help="ddim, dpm++, unipc, ..."),
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
    "preset": Field(_request_field("preset"), help="sampling recipe: published (default) or fast, as `pano --preset`"),
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

