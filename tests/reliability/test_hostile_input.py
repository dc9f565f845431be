"""Issue 15: every case of the careless/hostile user's list ends in exit 1 with ONE line and no
traceback (and is not an "internal error"), and nothing is lost: special files are never replaced,
a scene is never written into by an export, NaN never reaches scene.json, `history` escapes what
it prints. The CLI runs in-process (CliRunner) on the procedural backend; small sizes throughout."""

from __future__ import annotations

import json
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from reliability_support import assert_error, error_line, invoke, tree


def _png_header_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _manifest(scene: Path) -> dict:
    return json.loads((scene / "scene.json").read_text())


def _write_manifest(scene: Path, manifest) -> None:
    (scene / "scene.json").write_text(json.dumps(manifest))


# ---- special files and scene folders as outputs --------------------------------------------------------

def test_export_to_dev_null_never_replaces_it(scene, tmp_path):
    before = os.stat("/dev/null")
    assert_error(invoke(["export", scene, "-o", "/dev/null", "-q"]), "character device", "never replaces")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_export_to_a_fifo_never_replaces_it(scene, tmp_path):
    fifo = tmp_path / "pipe.glb"
    os.mkfifo(fifo)
    assert_error(invoke(["export", scene, "-o", fifo, "-q"]), "fifo")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_pano_to_a_fifo_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fifo = tmp_path / "w.glb"
    os.mkfifo(fifo)
    assert_error(invoke(["pano", "hills", "--backend", "procedural", "--size", "64x32", "-o", fifo, "-q"]), "fifo")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not (tmp_path / "w").exists()


def test_screenshot_to_a_socket_or_folder_is_refused(scene, tmp_path):
    import socket

    sock_path = tmp_path / "s.png"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        assert_error(invoke(["view", scene, "--screenshot", sock_path, "--size", "64x32"]), "socket")
    finally:
        server.close()
    assert stat.S_ISSOCK(os.stat(sock_path).st_mode)


@pytest.mark.parametrize("target", ["scene.json", "v1/depth.npy", "v1/image.png", "v1/new.glb"])
def test_export_into_the_scene_folder_is_refused_and_the_scene_is_intact(scene, target):
    before = tree(scene)
    assert_error(invoke(["export", scene, "-o", scene / target, "-q"]), "inside the scene folder")
    assert tree(scene) == before
    from worldgen.scene.store import Scene

    Scene.open(scene).load()


def test_glb_option_into_a_scene_folder_is_refused(scene):
    before = tree(scene)
    assert_error(invoke(["place", scene, "a hut", "--distance", 1, "--azimuth", 180, "--width", 2,
                         "--backend", "procedural", "--glb", scene / "v1" / "x.glb", "-q"]), "inside the scene folder")
    assert tree(scene) == before


def _recipe(folder: Path, exports: str) -> Path:
    path = folder / "r.toml"
    path.write_text(f'prompt = "hills by a lake"\nsize = "64x32"\nsteps = 1\n[backend]\nname = "procedural"\n{exports}')
    return path


@pytest.mark.parametrize("export_path", ["r.toml", "link/out.ply"])
def test_recipe_export_paths_cannot_overwrite_the_recipe_or_leave_through_a_symlink(tmp_path, monkeypatch,
                                                                                    export_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to(outside, target_is_directory=True)
    recipe = _recipe(work, f'[[export]]\nformat = "ply"\npath = "{export_path}"\n')
    text = recipe.read_text()
    monkeypatch.chdir(work)
    message = assert_error(invoke(["build", recipe, "-o", work / "w.glb", "-q"]), "export path")
    assert "recipe reads" in message or "outside the output folder" in message
    assert recipe.read_text() == text and list(outside.iterdir()) == []


# ---- numbers at the edge -----------------------------------------------------------------------------------

NUMBER_CASES = {
    "guidance-nan": (["--guidance", "nan"], ["guidance", "not nan"]),
    "guidance-inf": (["--guidance", "inf"], ["guidance"]),
    "span-tiny": (["--span", "1e-300"], ["span", "1 degree"]),
    "size-16384-square": (["--size", "16384x16384"], ["megapixels", "limit"]),
    "seed-negative": (["--seed", "-1"], ["seed", "between 0 and"]),
    "seed-2-64": (["--seed", str(2**64)], ["seed", "between 0 and"]),
    "region-weight-overflow": (["--region", "0:90*3000000=a lighthouse"], ["weight", "between 0.001 and 100"]),
}


@pytest.mark.parametrize("name", list(NUMBER_CASES))
def test_pano_numbers_are_checked_once_at_the_edge(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra, fragments = NUMBER_CASES[name]
    args = ["pano", "hills", "--backend", "procedural", "-o", tmp_path / "w.glb", "-q"]
    if "--size" not in extra:
        args += ["--size", "64x32"]
    assert_error(invoke(args + extra), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_screenshot_size_has_a_stated_limit(scene, tmp_path):
    assert_error(invoke(["view", scene, "--screenshot", tmp_path / "s.png", "--size", "100000x100000"]),
                 "exceeds 8192")
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--fov", "nan"], "--fov"), (["--yaw", "inf"], "--yaw"), (["--pitch", "200"], "--pitch"),
    (["--max-vertices", "0"], "--max-vertices")])
def test_view_options_are_finite_and_in_range(scene, tmp_path, args, fragment):
    assert_error(invoke(["view", scene, "--screenshot", tmp_path / "s.png", "--size", "64x32", *args]), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--distance", "nan"], "distance"), (["--distance", "1e300"], "distance"), (["--lift", "inf"], "lift"),
    (["--guidance", "nan"], "guidance"), (["--seed", "-5"], "seed")])
def test_place_numbers_are_checked(scene, args, fragment):
    base = {"--distance": "1", "--azimuth": "180", "--width": "2"}
    for i in range(0, len(args), 2):
        base.pop(args[i], None)
    flat = [x for pair in base.items() for x in pair]
    before = tree(scene)
    assert_error(invoke(["place", scene, "a hut", *flat, *args, "--backend", "procedural", "-q"]), fragment)
    assert tree(scene) == before


def test_batch_and_recipes_use_the_same_rules(tmp_path, monkeypatch):
    """Guidance NaN, a seed of 2**64 and a tiny span fail in a job file and a recipe as at the CLI."""
    from worldgen.batch import parse_jobs
    from worldgen.errors import UserInputError
    from worldgen.recipes import RecipeError, parse_recipe

    with pytest.raises(UserInputError, match="seed"):
        parse_jobs('{"prompt": "a", "seed": 18446744073709551616}', "jsonl")
    job = parse_jobs('{"prompt": "a", "guidance": NaN, "size": "64x32"}', "jsonl")[0]
    with pytest.raises(UserInputError, match="guidance"):
        job.request()
    for field in ('guidance = nan', 'span = 1e-300', 'seed = -1', 'size = "16384x16384"',
                  '[[region]]\nprompt = "b"\nazimuth = [0, 90]\nweight = 1e38', '[[region]]\nprompt = "b"\nazimuth = [0, 90]\nweight = nan'):
        with pytest.raises(RecipeError):
            parse_recipe(f'prompt = "a"\n{field}\n')


def test_nan_never_reaches_scene_json(scene):
    """Old records that carry NaN (written before the checks) are rewritten as null, never as NaN."""
    manifest = _manifest(scene)
    manifest["versions"][0]["params"]["guidance"] = float("nan")
    (scene / "scene.json").write_text(json.dumps(manifest))  # Python writes a bare NaN
    result = invoke(["place", scene, "a hut", "--distance", 1, "--azimuth", 180, "--width", 2,
                     "--backend", "procedural", "-q"])
    assert result.exit_code == 0, result.output
    text = (scene / "scene.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in scene.json"))


# ---- damaged and hostile files --------------------------------------------------------------------------------

def test_decompression_bomb_png_as_input_and_as_layer(scene, tmp_path):
    bomb = _png_header_claiming(tmp_path / "bomb.png", 60000, 60000)
    assert_error(invoke(["depth", bomb, "-o", tmp_path / "out", "-q"]), "decompression bomb")
    assert_error(invoke(["edit", scene, "--mask", bomb, "-q"]), "bomb")
    _png_header_claiming(scene / "v1" / "image.png", 60000, 60000)
    assert_error(invoke(["export", scene, "-o", tmp_path / "x.glb", "-q"]), "bomb")


@pytest.mark.parametrize("array", [np.array([["a", "b"]]), np.zeros((32, 64), dtype=[("x", "<f4"), ("y", "<i4")]),
                                   np.full((32, 64), "text"), np.zeros((32, 64, 500), np.float32)],
                         ids=["strings", "structured", "strings-right-shape", "too-many-channels"])
def test_depth_npy_with_the_wrong_dtype_or_shape(scene, tmp_path, array):
    np.save(scene / "v1" / "depth.npy", array, allow_pickle=False)
    for args in (["export", scene, "-o", tmp_path / "x.glb", "-q"], ["refine", scene, "-q"]):
        assert_error(invoke(args), "depth.npy")


def test_depth_npy_header_claiming_a_huge_array_costs_nothing(scene, tmp_path):
    path = scene / "v1" / "depth.npy"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += " " * (118 - len(header)) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    assert_error(invoke(["export", scene, "-o", tmp_path / "x.glb", "-q"]), "depth.npy", "shape")


DEEP = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_everywhere(scene, tmp_path, monkeypatch):
    (scene / "scene.json").write_text('{"format": "worldgen-scene", "versions": ' + DEEP + "}")
    assert_error(invoke(["history", scene]), "scene.json")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": ' + DEEP + "}\n")
    assert_error(invoke(["batch", jobs, "--out", tmp_path / "out", "--dry-run"]), "jobs.jsonl")
    recipe = tmp_path / "deep.toml"
    recipe.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert_error(invoke(["build", recipe, "--dry-run"]), "deep.toml")
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for name in ("models.json", "index.json"):
        (home / "models" / name).write_text(DEEP)
    (home / "models.json").write_text(DEEP)
    monkeypatch.setenv("WORLDGEN_HOME", str(home))
    result = invoke(["models", "list"])
    if result.exit_code != 0:
        error_line(result)


@pytest.mark.parametrize("field, value", [
    ("operation", {"a": 1}), ("prompt", 12), ("backend", "procedural"), ("backend", {"name": 5}),
    ("created", [1]), ("size", "64x32"), ("seed", "zero"), ("seed", -4), ("parent", True), ("version", True),
    ("layers", []), ("geometry", {"near": "x"}), ("projection", {"width": "wide"}), ("modality", 3)])
def test_history_and_export_on_wrong_manifest_types(scene, tmp_path, field, value):
    manifest = _manifest(scene)
    manifest["versions"][0][field] = value
    _write_manifest(scene, manifest)
    for args in (["history", scene], ["export", scene, "-o", tmp_path / "x.glb", "-q"]):
        assert_error(invoke(args), "scene.json")


def test_dangling_symlink_at_the_scene_and_at_a_version_folder(scene, tmp_path):
    (tmp_path / "ghost").symlink_to(tmp_path / "nowhere")
    assert_error(invoke(["history", tmp_path / "ghost"]), "dangling")
    # a dangling link where the next version's folder would go: skipped, never replaced
    (scene / "v2").symlink_to(tmp_path / "nowhere")
    result = invoke(["place", scene, "a hut", "--distance", 1, "--azimuth", 180, "--width", 2,
                     "--backend", "procedural", "-q"])
    assert result.exit_code == 0, result.output
    assert (scene / "v2").is_symlink()
    assert _manifest(scene)["versions"][1]["layers"]["image"].startswith("v3/")
    # a dangling link in place of a listed version's folder: one line
    import shutil

    shutil.rmtree(scene / "v3")
    (scene / "v3").symlink_to(tmp_path / "nowhere")
    message = assert_error(invoke(["export", scene, "-o", tmp_path / "x.glb", "-q"]), "v3/image.png")
    assert "missing its layer" in message or "leaves the scene folder" in message


def test_hostile_text_encoder_pickle_is_one_line(tmp_path):
    """A base whose text encoder is a pickle that runs code: refused by the safe loader, one line."""
    from reliability_support import fixture_dir, writable_copy

    base = writable_copy(fixture_dir() / "base", tmp_path / "base")
    encoder = base / "text_encoder"
    for weights in list(encoder.glob("*.safetensors")) + list(encoder.glob("*.bin")):
        weights.unlink()

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    import pickle

    (encoder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Evil()}))
    result = invoke(["pano", "hills", "--model", fixture_dir() / "model", "--base", base, "--size", "64x32",
                     "--steps", "1", "-o", tmp_path / "w.glb", "-q"])
    error_line(result)
    assert not (tmp_path / "pwned").exists()


# ---- printing ----------------------------------------------------------------------------------------------------

def test_history_escapes_control_characters(scene):
    manifest = _manifest(scene)
    manifest["versions"][0]["prompt"] = "hills\n*v9   pano   forged line\x1b[2J\x1b]0;title\x07\u202e"
    manifest["versions"][0]["operation"] = "pano\r"
    _write_manifest(scene, manifest)
    result = invoke(["history", scene])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\r" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "\\n*v9" in result.stdout and "\\x1b[2J" in result.stdout


def test_error_lines_escape_control_characters(tmp_path):
    bad = tmp_path / "evil\x1b[31mname"
    result = invoke(["history", bad])
    message = error_line(result)
    assert "\x1b" not in result.output and "\\x1b" in message


# ---- unexpected faults -------------------------------------------------------------------------------------------

def test_an_unexpected_exception_is_one_line_with_the_debug_hint(scene, monkeypatch):
    from worldgen.cli.commands import history as history_module

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(history_module, "_field", broken)
    result = invoke(["history", scene])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "internal error TypeError: a bug" in lines[0] and "WORLDGEN_DEBUG=1" in lines[0]
    monkeypatch.setenv("WORLDGEN_DEBUG", "1")
    result = invoke(["history", scene])
    assert isinstance(result.exception, TypeError)  # the traceback is there for whoever asked for it


@pytest.mark.parametrize("option, fragment", [("voxel_size=1e-30", "open3d refused"), ("voxel_size=nan", "finite"),
                                              ("voxel_size=inf", "finite")])
def test_absurd_exporter_options_are_one_line(scene, tmp_path, option, fragment):
    message = assert_error(invoke(["export", scene, "-f", "ply", "-O", option, "-o", tmp_path / "x.ply", "-q"]),
                           fragment)
    assert "\x1b" not in message
    assert not (tmp_path / "x.ply").exists()
