"""Fuzz the parsers of files people hand-edit or download: scene manifests, batch job files, the
model-store index. Whatever the bytes, each parser either succeeds or raises its documented error
type (one line): SceneError for scenes, UserInputError for job files, ModelError for the store
index. Anything else (KeyError, TypeError, AttributeError, ...) is a crash and fails the test.

Bounded for CI: a fixed number of examples per property and no per-example deadline (a busy CI
machine must not turn slowness into failures); the whole file runs in seconds."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import procedural_scene

from worldgen.errors import ModelError, SceneError, UserInputError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["v1/image.png", "../x.png", "/etc/passwd", "v1", "", ".", "v1/depth.npy",
                              "worldgen-scene", "cylindrical", "depth", "image", "C:\\x"]))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10) | st.sampled_from(
                               ["version", "layers", "projection", "width", "height", "span_deg", "type",
                                "previews", "geometry", "image", "depth", "format", "format_version"]),
                               inner, max_size=5), max_leaves=16)


def _one_line(exc: BaseException) -> None:
    assert "\n" not in str(exc), f"multi-line error: {exc!r}"


@pytest.fixture(scope="module")
def scene_dir():
    """One real scene whose manifest each example replaces (the layer files stay)."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-scene-"))
    procedural_scene(folder / "scene", width=32, height=16)
    yield folder / "scene"
    shutil.rmtree(folder, ignore_errors=True)


def _open_and_load(folder: Path, text: str | bytes) -> None:
    from worldgen.scene.store import Scene

    manifest = folder / "scene.json"
    manifest.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        scene = Scene.open(folder)
        for version in range(1, scene.current + 1):
            scene.load(version)
    except SceneError as exc:
        _one_line(exc)


def _paths(value, prefix=()):
    """Every place in a JSON document: (path, ...) tuples of keys/indices."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, prefix + (index,))


def _edit(document, path, new, delete: bool):
    if not path:
        return new
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return document


@FUZZ
@given(data=st.data())
def test_mutated_manifest_opens_or_raises_scene_error(scene_dir, data):
    """A real manifest with a few values replaced or deleted anywhere in it (hand edits gone wrong)."""
    original = json.loads(_pristine(scene_dir))
    document = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        places = list(_paths(document))
        # The fields of a version record are where hand edits go wrong: weight them up.
        places += [p for p in places if len(p) in (3, 4) and p[0] == "versions"] * 3
        path = data.draw(st.sampled_from(places), label="where")
        delete = bool(path) and data.draw(st.booleans(), label="delete")
        document = _edit(document, path, data.draw(JSON_VALUES, label="value"), delete)
    _open_and_load(scene_dir, json.dumps(document))


@FUZZ
@given(document=JSON_VALUES)
def test_arbitrary_json_manifest_opens_or_raises_scene_error(scene_dir, document):
    _open_and_load(scene_dir, json.dumps(document))


@FUZZ
@given(raw=st.binary(max_size=400) | st.text(max_size=200))
def test_arbitrary_bytes_manifest_opens_or_raises_scene_error(scene_dir, raw):
    _open_and_load(scene_dir, raw)


@FUZZ
@given(data=st.data())
def test_truncated_manifest_opens_or_raises_scene_error(scene_dir, data):
    """A manifest cut anywhere (a copy that stopped half way)."""
    text = _pristine(scene_dir)
    _open_and_load(scene_dir, text[: data.draw(st.integers(0, len(text)), label="cut")])


# Crashes the fuzzer has found, kept as fixed examples so they are checked on every run.
FOUND = {
    "geometry-not-an-object": ("geometry", 5),
    "previews-not-an-object": ("previews", [1]),
    "previews-null": ("previews", None),
    "layers-a-list": ("layers", ["v1/image.png"]),
    "projection-a-string": ("projection", "cylindrical"),
    "size-a-string": ("size", "64x32"),
    "prompt-a-number": ("prompt", 5),
}


@pytest.mark.parametrize("key, value", list(FOUND.values()), ids=list(FOUND))
def test_found_crashers_raise_scene_error(scene_dir, key, value):
    document = json.loads(_pristine(scene_dir))
    document["versions"][0][key] = value
    _open_and_load(scene_dir, json.dumps(document))


_PRISTINE: dict[Path, str] = {}


def _pristine(folder: Path) -> str:
    if folder not in _PRISTINE:
        _PRISTINE[folder] = (folder / "scene.json").read_text()
    return _PRISTINE[folder]


# ---- batch job files ------------------------------------------------------------------------------------

JOB_FIELDS = ["name", "prompt", "seed", "size", "span", "steps", "guidance", "negative", "modality", "scheduler",
              "recipe", "bogus"]
JOBS = st.lists(st.dictionaries(st.sampled_from(JOB_FIELDS), JSON_VALUES, max_size=5) | JSON_VALUES, max_size=4)


def _parse(text: str, fmt: str) -> None:
    from worldgen.batch import parse_jobs

    try:
        parse_jobs(text, fmt, source="jobs")
    except UserInputError as exc:
        _one_line(exc)


@FUZZ
@given(jobs=JOBS)
def test_jsonl_jobs_parse_or_raise_user_input_error(jobs):
    _parse("\n".join(json.dumps(job) for job in jobs), "jsonl")


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_as_jobs_parses_or_raises_user_input_error(text):
    for fmt in ("jsonl", "toml", "text"):
        _parse(text, fmt)


@FUZZ
@given(jobs=st.lists(st.dictionaries(st.sampled_from(JOB_FIELDS), SCALARS.filter(lambda v: v is not None),
                                     max_size=5), max_size=3))
def test_toml_jobs_parse_or_raise_user_input_error(jobs):
    def toml_value(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value != value:
            return "nan"
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return json.dumps(value)

    text = "\n".join("[[job]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in job.items()) for job in jobs)
    _parse(text, "toml")


# ---- the model store index ---------------------------------------------------------------------------------

def _read_index(document) -> None:
    from worldgen.backends.jointnet.store import ModelStore

    with tempfile.TemporaryDirectory() as root:
        store = ModelStore(Path(root))
        store.index_path.write_text(json.dumps(document))
        try:
            for entry in store.entries():
                _ = entry.checkpoint_dir, entry.base_dir
            store.default()
        except ModelError as exc:
            _one_line(exc)


@pytest.mark.parametrize("document", [
    {"version": 1, "default": None, "models": {"rgbd": None}},
    {"version": 1, "default": None, "models": {"rgbd": []}},
    {"version": 1, "default": None, "models": {"rgbd": {"path": 5}}},
    {"version": 1, "default": None, "models": {"rgbd": {"path": "/x", "base": 7}}},
    {"version": 1, "default": ["rgbd"], "models": {}},
], ids=["entry-null", "entry-list", "path-number", "base-number", "default-list"])
def test_found_model_index_crashers_raise_model_error(document):
    _read_index(document)

@FUZZ
@given(document=JSON_VALUES | st.fixed_dictionaries({"version": SCALARS, "default": SCALARS,
                                                      "models": st.dictionaries(st.text(max_size=8), JSON_VALUES,
                                                                                max_size=3)}))
def test_model_index_reads_or_raises_model_error(document):
    _read_index(document)


# ---- scene recipes (`worldgen build`) -------------------------------------------------------------------

def _recipe_loader():
    """worldgen.recipes' file loader: ``load_recipe(path)``; skipped only while the module does not exist."""
    recipes = pytest.importorskip("worldgen.recipes", reason="worldgen.recipes (`worldgen build`) does not exist yet")
    loader = getattr(recipes, "load_recipe", None)
    if loader is None:
        pytest.fail("worldgen.recipes has no load_recipe(path); the recipe fuzz test needs one (or adapt this test)")
    return loader


RECIPE_KEYS = ["prompt", "seed", "size", "span", "steps", "backend", "model", "modality", "refine", "outpaint",
               "edit", "export", "scene", "layers", "mask", "region", "regions", "name", "version", "format"]


@FUZZ
@given(text=st.text(max_size=300)
       | st.lists(st.tuples(st.sampled_from(RECIPE_KEYS), SCALARS.filter(lambda v: v is not None)), max_size=6)
       .map(lambda pairs: "\n".join(f"{k} = {json.dumps(v)}" for k, v in pairs)))
def test_recipe_loads_or_raises_a_worldgen_error(text):
    from worldgen.errors import WorldgenError

    load_recipe = _recipe_loader()
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "scene.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load_recipe(path)
        except WorldgenError as exc:
            _one_line(exc)
