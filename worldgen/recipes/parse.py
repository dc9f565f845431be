"""Reading a recipe: TOML text -> a checked ``Recipe``, or a ``RecipeError`` listing every problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from ..errors import UserInputError, WorldgenError
from .model import ExportStep, PlaceStep, Recipe, RefineStep
from .schema import (BACKEND_FIELDS, EXPORT_FIELDS, MAX_RECIPE_BYTES, NAME_RE, PLACE_FIELDS, REFINE_FIELDS,
                     REGION_FIELDS, SCENES_DIR, TABLES, WORLD_FIELDS, Field, Issue, RecipeError, _Invalid, _Refused,
                     _SourceLines, _show)

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

    def problem(self, table: tuple, key: Optional[str], name: str, message: str, names_field: bool = False) -> None:
        self.issues.append(Issue(self.lines.line(table, key), name, message, names_field))

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
            except _Invalid as exc:  # the request model's own line names the field already
                self.problem(table, key, name, str(exc), names_field=isinstance(exc, _Refused))
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
        self.regions(recipe)
        self.places(recipe)
        self.refine_steps(recipe)
        self.exports(recipe)
        if self.issues:
            self.issues.sort(key=lambda issue: issue.line or 10**9)
            raise RecipeError(self.source, self.issues)
        return recipe

    def regions(self, recipe: Recipe) -> None:
        from ..geometry.regions import Region

        width, height, span = recipe.width, recipe.height, recipe.span_deg
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
            from ..geometry.regions import condition_weights

            try:
                condition_weights(recipe.regions, width, height, span)
            except UserInputError as exc:
                self.problem(("region", 0), None, "region", _plain(exc))

    def places(self, recipe: Recipe) -> None:
        from ..geometry.placement import Placement
        from ..geometry.regions import read_mask_image

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

    def refine_steps(self, recipe: Recipe) -> None:
        current = (recipe.width, recipe.height)
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

    def exports(self, recipe: Recipe) -> None:
        for table, label, values in self.array("export"):
            checked = self.fields(values, EXPORT_FIELDS, table, label)
            if not isinstance(values, dict) or len(checked) < len(values) or "format" not in checked:
                continue
            try:
                from ..export_files import exporter_for

                spec = exporter_for(checked["format"])
                unknown = sorted(set(checked.get("options", {})) - set(spec.options))
                if unknown:
                    raise UserInputError(f"{spec.name} has no option {unknown[0]!r}; known: {', '.join(spec.options)}")
            except WorldgenError as exc:
                self.problem(table, "format" if "options" not in checked else "options", label, _plain(exc))
                continue
            recipe.exports.append(ExportStep(checked["format"], checked.get("path"), dict(checked.get("options", {}))))
        paths = [e.path or f"{recipe.name}{_extension(e.format)}" for e in recipe.exports]
        for k, p in enumerate(paths):
            if p in paths[:k]:
                self.problem(("export", k), "path", f"export[{k + 1}].path",
                             f"{p} is written by an earlier export too; give this one another path")
        if not recipe.exports:
            recipe.exports.append(ExportStep("glb"))


def _plain(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _extension(fmt: str) -> str:
    from ..export_files import exporter_for

    ext = exporter_for(fmt).extension
    return ext if ext[1:] == fmt else f".{fmt}{ext}"


def _refine_step(checked: dict) -> RefineStep:
    fields = {k: checked[k] for k in ("scale", "strength", "keep", "steps", "guidance", "prompt", "method")
              if k in checked}
    if "negative" in checked:
        fields["negative_prompt"] = checked["negative"]
    return RefineStep(fields, checked.get("size"))

