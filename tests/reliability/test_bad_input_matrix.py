"""The bad-input matrix (issue 10): every case ends in ONE error line that names the fix, exit
code 1, and no partial output anywhere in the working folder or the model store.

Each case builds its broken input inside ``env.work`` (the current directory during the run),
then the file tree of ``env.work`` and of the model store is snapshotted, the real CLI runs, and
the trees must be unchanged afterwards: a failing command leaves nothing behind, not even a
hidden temporary file.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from reliability_support import assert_error, fixture_dir, invoke, tree, writable_copy

CASES: dict[str, object] = {}


def case(name: str):
    def register(func):
        assert name not in CASES
        CASES[name] = func
        return func

    return register


class Env:
    """A test's working folder, with lazily made inputs to break."""

    def __init__(self, work: Path, scene: Path, home: Path) -> None:
        self.work = work
        self.scene = scene  # a procedural 64x32 scene, version 1
        self.home = home

    def model(self, name: str = "model") -> Path:
        """A writable copy of the official-tiny checkpoint (unet/ + jointnet/, pickled .bin weights)."""
        return writable_copy(fixture_dir() / name, self.work / f"ck-{name}")

    def base(self) -> Path:
        return writable_copy(fixture_dir() / "base", self.work / "base")

    def pano_with(self, model: Path, base: Path | None = None, *extra) -> list:
        base = base or fixture_dir() / "base"
        return ["pano", "hills", "--model", model, "--base", base, "--size", "64x32", "--steps", "1",
                "-o", self.work / "out.glb", "-q", *extra]

    def image(self, name: str, width: int, height: int, mode: str = "RGB") -> Path:
        from PIL import Image

        path = self.work / name
        value = 0 if mode == "1" else (128 if mode in ("L", "P", "I;16") else (128, 90, 40))
        Image.new(mode, (width, height), value).save(path)
        return path

    def junk(self, name: str, data: bytes = b"this is not what the name says\n" * 8) -> Path:
        path = self.work / name
        path.write_bytes(data)
        return path

    def manifest(self) -> dict:
        return json.loads((self.scene / "scene.json").read_text())

    def write_manifest(self, manifest) -> None:
        (self.scene / "scene.json").write_text(json.dumps(manifest))


def _weights(folder: Path) -> Path:
    return folder / "diffusion_pytorch_model.bin"


def _state(folder: Path) -> dict:
    import torch

    return torch.load(_weights(folder), map_location="cpu", weights_only=True)


# ---- prompts, sizes, spans ---------------------------------------------------------------------------

@case("prompt-empty")
def _(env):
    return ["pano", "", "-q"], ["prompt is empty", "describe"]


@case("prompt-blank")
def _(env):
    return ["pano", "   \t ", "-q"], ["prompt is empty"]


@case("prompt-overlong")
def _(env):
    return ["pano", "a misty fjord " * 200, "-q"], ["characters", "under 2000"]


for _size, _fix in [("1001x128", "multiple of 8"), ("64x30", "multiple of 8"), ("0x64", "positive multiple of 8"),
                    ("-8x64", "positive multiple of 8"), ("100000x512", "exceeds"), ("512x163840", "exceeds")]:
    case(f"size-{_size}")(lambda env, s=_size, f=_fix: (["pano", "hills", "--size", s, "-q"], [f]))

for _span in ["0", "-10", "360.5", "720", "nan", "inf"]:
    case(f"span-{_span}")(lambda env, s=_span: (["pano", "hills", "--span", s, "-q"],
                                                ["outside (0, 360]", "--span"]))


@case("refine-scale-not-multiple-of-8")
def _(env):
    return ["refine", env.scene, "--scale", "1.3", "-q"], ["not a multiple of 8", "scale"]


@case("refine-size-absurd")
def _(env):
    return ["refine", env.scene, "--size", "40000x32", "-q"], ["exceeds"]


@case("outpaint-span-outside")
def _(env):
    return ["outpaint", env.scene, "--span", "400", "-q"], ["outside (0, 360]"]


@case("depth-image-size-not-multiple-of-8")
def _(env):
    return ["depth", env.image("odd.png", 100, 52), "-o", env.work / "new", "-q"], ["multiple of 8"]


# ---- checkpoints ---------------------------------------------------------------------------------------

@case("checkpoint-missing")
def _(env):
    return env.pano_with(env.work / "no-such-model"), ["no-such-model", "worldgen models add"]


@case("checkpoint-config-without-weights")
def _(env):
    model = env.model()
    _weights(model / "unet").unlink()
    return env.pano_with(model), ["unet", "re-download"]


@case("checkpoint-weights-truncated")
def _(env):
    model = env.model()
    path = _weights(model / "jointnet")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return env.pano_with(model), ["weights", "re-download"]


@case("checkpoint-weights-corrupt")
def _(env):
    model = env.model()
    path = _weights(model / "unet")
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    return env.pano_with(model), ["weights", "re-download"]


@case("checkpoint-safetensors-truncated")
def _(env):
    from safetensors.torch import save_file

    model = env.model()
    state = _state(model / "unet")
    _weights(model / "unet").unlink()
    target = model / "unet" / "diffusion_pytorch_model.safetensors"
    save_file(state, str(target))
    target.write_bytes(target.read_bytes()[:-1000])
    return env.pano_with(model), ["weights", "re-download"]


@case("checkpoint-weights-wrong-shape")
def _(env):
    import torch

    model = env.model()
    state = _state(model / "jointnet")
    key = next(k for k in state if k.endswith("conv_in.weight"))
    state[key] = torch.zeros(state[key].shape[0] * 2, *state[key].shape[1:])
    torch.save(state, _weights(model / "jointnet"))
    return env.pano_with(model), ["jointnet", "re-download"]


@case("checkpoint-weights-missing-tensors")
def _(env):
    import torch

    model = env.model()
    state = _state(model / "unet")
    torch.save({k: v for i, (k, v) in enumerate(state.items()) if i % 2}, _weights(model / "unet"))
    return env.pano_with(model), ["do not match", "re-download"]


@case("checkpoint-config-invalid-json")
def _(env):
    model = env.model()
    (model / "unet" / "config.json").write_text('{"_class_name": "JointNetModel", "in_channels": ')
    return env.pano_with(model), ["not valid JSON", "re-download"]


@case("checkpoint-config-of-another-model")
def _(env):
    model = env.model()
    shutil.copyfile(fixture_dir() / "base" / "vae" / "config.json", model / "unet" / "config.json")
    return env.pano_with(model), ["not a JointNet branch"]


@case("checkpoint-branches-from-two-checkpoints")
def _(env):
    model = env.model()
    shutil.rmtree(model / "jointnet")
    writable_copy(fixture_dir() / "model_inpaint" / "jointnet", model / "jointnet")
    return env.pano_with(model), ["one checkpoint"]


@case("base-missing")
def _(env):
    return env.pano_with(env.model(), env.work / "no-base"), ["not a base model folder", "--base"]


@case("base-text-encoder-width-mismatch")
def _(env):
    """An SD 2.1-base checkpoint with an SD 1.x-style base: the text encoder's width (24 here)
    differs from the UNet's cross_attention_dim (32)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    base = env.base()
    shutil.rmtree(base / "text_encoder")
    config = CLIPTextConfig(vocab_size=1000, hidden_size=24, intermediate_size=37, num_hidden_layers=1,
                            num_attention_heads=4, max_position_embeddings=77, projection_dim=24)
    CLIPTextModel(config).save_pretrained(base / "text_encoder")
    return env.pano_with(env.model(), base), ["text encoder", "base"]


@case("modality-not-in-checkpoint")
def _(env):
    return env.pano_with(env.model(), None, "--modality", "normal"), ["'normal'", "--modality depth"]


def _zip_of(folder: Path, target: Path, prefix: str = "rgbd_finetune_sd21b/") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + str(path.relative_to(folder)))
    return target


@case("zip-not-a-zip")
def _(env):
    return ["models", "add", env.junk("rgbd_finetune_sd21b.zip"), "--name", "rgbd", "-q"], ["zip"]


@case("zip-half-downloaded")
def _(env):
    archive = _zip_of(fixture_dir() / "model", env.work / "full.zip")
    data = archive.read_bytes()
    archive.unlink()
    half = env.junk("rgbd_finetune_sd21b.zip", data[: len(data) // 2])
    return ["models", "add", half, "--name", "rgbd", "-q"], ["zip"]


@case("zip-corrupt-member")
def _(env):
    archive = _zip_of(fixture_dir() / "model", env.work / "rgbd_finetune_sd21b.zip")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = max(zf.infolist(), key=lambda i: i.compress_size)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in range(start + 100, start + info.compress_size - 100, 97):
        data[offset] ^= 0x5A
    archive.write_bytes(bytes(data))
    return ["models", "add", archive, "--name", "rgbd", "-q"], ["re-download"]


@case("zip-without-checkpoint")
def _(env):
    archive = _zip_of(fixture_dir() / "base" / "vae", env.work / "vae.zip")
    return ["models", "add", archive, "--name", "rgbd", "-q"], ["no JointNet checkpoint"]


# ---- scene folders ---------------------------------------------------------------------------------------

@case("scene-missing-image-layer")
def _(env):
    (env.scene / "v1" / "image.png").unlink()
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["missing its layer", "restore"]


@case("scene-missing-modality-layer")
def _(env):
    (env.scene / "v1" / "depth.npy").unlink()
    return ["export", env.scene, "-o", env.work / "x.ply", "-f", "ply", "-q"], ["missing its layer", "depth.npy"]


@case("scene-not-a-scene")
def _(env):
    (env.work / "empty").mkdir()
    return ["history", env.work / "empty"], ["is not a scene", "worldgen pano"]


@case("scene-newer-format-version")
def _(env):
    manifest = env.manifest()
    manifest["format_version"] = 99
    env.write_manifest(manifest)
    return ["history", env.scene], ["format version 99", "upgrade worldgen"]


@case("scene-invalid-json")
def _(env):
    (env.scene / "scene.json").write_text("{\"format\": \"worldgen-scene\", ")
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["not valid JSON", "backup"]


@case("scene-manifest-truncated")
def _(env):
    text = (env.scene / "scene.json").read_text()
    (env.scene / "scene.json").write_text(text[: len(text) // 2])
    return ["refine", env.scene, "-q"], ["not valid JSON"]


@case("scene-manifest-not-utf8")
def _(env):
    (env.scene / "scene.json").write_bytes(b"\xff\xfe\x00garbage\x80")
    return ["history", env.scene], ["scene.json"]


@case("scene-manifest-not-an-object")
def _(env):
    (env.scene / "scene.json").write_text("[1, 2, 3]")
    return ["history", env.scene], ["not a worldgen scene manifest"]


@case("scene-path-escapes-with-dotdot")
def _(env):
    (env.work / "secret.png").write_bytes((env.scene / "v1" / "image.png").read_bytes())
    manifest = env.manifest()
    manifest["versions"][0]["layers"]["image"] = "../secret.png"
    env.write_manifest(manifest)
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["leaves the scene folder"]


@case("scene-path-absolute")
def _(env):
    manifest = env.manifest()
    manifest["versions"][0]["layers"]["depth"] = str((env.scene / "v1" / "depth.npy").resolve())
    env.write_manifest(manifest)
    return ["history", env.scene], ["not a relative path inside the scene"]


@case("scene-preview-path-escapes")
def _(env):
    manifest = env.manifest()
    manifest["versions"][0]["previews"]["depth"] = "v1/../../elsewhere.png"
    env.write_manifest(manifest)
    return ["history", env.scene], ["leaves the scene folder"]


@case("scene-layer-symlink-out-of-folder")
def _(env):
    outside = env.work / "outside.png"
    shutil.copyfile(env.scene / "v1" / "image.png", outside)
    (env.scene / "v1" / "image.png").unlink()
    (env.scene / "v1" / "image.png").symlink_to(outside)
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["leaves the scene folder"]


@case("scene-version-folder-symlink-out-of-folder")
def _(env):
    moved = env.work / "moved-v1"
    shutil.move(env.scene / "v1", moved)
    (env.scene / "v1").symlink_to(moved, target_is_directory=True)
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["leaves the scene folder"]


@case("scene-layer-not-an-image")
def _(env):
    (env.scene / "v1" / "image.png").write_bytes(b"<html>404 not found</html>")
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["not a readable image"]


@case("scene-modality-is-a-pickle")
def _(env):
    marker = env.work / "pwned"
    np.save(env.scene / "v1" / "depth.npy", np.array([_Marker(marker)], dtype=object), allow_pickle=True)
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["not a readable array"]


@case("scene-modality-wrong-size")
def _(env):
    np.save(env.scene / "v1" / "depth.npy", np.zeros((10, 10), np.float32))
    return ["export", env.scene, "-o", env.work / "x.glb", "-q"], ["disagree"]


@case("scene-version-out-of-range")
def _(env):
    return ["export", env.scene, "--version", "7", "-o", env.work / "x.glb", "-q"], ["versions 1..1", "history"]


class _Marker:
    """Unpickling this would create a file; a loader that unpickles would be caught by the marker."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# ---- image, mask and modality files -------------------------------------------------------------------

@case("depth-image-not-an-image")
def _(env):
    return ["depth", env.junk("photo.png"), "-o", env.work / "new", "-q"], ["not a readable image"]


@case("outpaint-photo-not-an-image")
def _(env):
    return (["outpaint", "--photo", env.junk("beach.jpg"), "--prompt", "a beach", "-o", env.work / "new", "-q"],
            ["not a readable image"])


@case("edit-mask-not-an-image")
def _(env):
    return ["edit", env.scene, "--mask", env.junk("mask.png"), "-q"], ["not a readable mask image", "PNG"]


@case("edit-mask-wrong-size")
def _(env):
    mask = env.image("mask.png", 32, 32, "L")
    return ["edit", env.scene, "--mask", mask, "-q"], ["resize the mask to 64x32"]


@case("edit-mask-all-black")
def _(env):
    return ["edit", env.scene, "--mask", env.image("mask.png", 64, 32, "1"), "-q"], ["nothing to edit"]


def _outside_refine(env, modality: Path) -> list:
    return ["refine", "--image", env.image("pano.png", 64, 32), "--modality-file", modality, "-o", env.work / "new",
            "--model", env.model(), "--base", fixture_dir() / "base", "--steps", "1", "-q"]


@case("modality-png-wrong-mode")
def _(env):
    return _outside_refine(env, env.image("depth.png", 64, 32, "1")), ["mode 1", "16-bit greyscale PNG"]


@case("modality-file-wrong-size")
def _(env):
    np.save(env.work / "depth.npy", np.zeros((16, 64), np.float32))
    return _outside_refine(env, env.work / "depth.npy"), ["same size"]


@case("modality-file-wrong-channels")
def _(env):
    np.save(env.work / "depth.npy", np.zeros((32, 64, 3), np.float32))
    return _outside_refine(env, env.work / "depth.npy"), ["(H, W, 1)"]


@case("modality-file-nan")
def _(env):
    values = np.zeros((32, 64), np.float32)
    values[3, 4] = np.nan
    np.save(env.work / "depth.npy", values)
    return _outside_refine(env, env.work / "depth.npy"), ["NaN", "regenerate"]


@case("modality-file-not-an-array")
def _(env):
    return _outside_refine(env, env.junk("depth.npy")), ["not a readable .npy", "numpy.save"]


# ---- unknown names ---------------------------------------------------------------------------------------

@case("unknown-backend")
def _(env):
    return ["pano", "hills", "--backend", "nope", "-q"], ["unknown backend 'nope'", "worldgen plugins"]


@case("unknown-modality-pano")
def _(env):
    return ["pano", "hills", "--modality", "nope", "-q"], ["'nope'", "--modality"]


@case("unknown-modality-train")
def _(env):
    (env.work / "data").mkdir()
    return (["train", "--modality", "nope", "--base", fixture_dir() / "base", "--data", env.work / "data",
             "--out", env.work / "run", "-q"], ["unknown modality 'nope'", "worldgen plugins"])


@case("unknown-exporter")
def _(env):
    return ["export", env.scene, "-f", "nope", "-q"], ["unknown exporter 'nope'", "worldgen plugins"]


@case("unknown-scheduler")
def _(env):
    return env.pano_with(env.model(), None, "--scheduler", "nope"), ["nope"]


@case("unknown-dtype")
def _(env):
    return env.pano_with(env.model(), None, "--dtype", "float8"), ["float8", "float32"]


@case("unknown-device")
def _(env):
    return env.pano_with(env.model(), None, "--device", "warp-drive"), ["not a torch device", "cpu"]


# ---- the runner ----------------------------------------------------------------------------------------

def _files(root: Path) -> dict[str, str]:
    """The store's files (its empty folders may be created: they are not partial output)."""
    return {k: v for k, v in tree(root).items() if v != "dir"} if root.exists() else {}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, scene, tmp_path, monkeypatch):
    work = scene.parent / "work"
    work.mkdir()
    moved = Path(shutil.move(scene, work / "scene"))
    home = tmp_path / "home"
    monkeypatch.setenv("WORLDGEN_HOME", str(home))
    monkeypatch.chdir(work)
    env = Env(work, moved, home)
    args, fragments = CASES[name](env)
    before, store_before = tree(work), _files(home)

    result = invoke(args)

    assert_error(result, *fragments)
    assert tree(work) == before, "the failed command left or changed files in the working folder"
    assert _files(home) == store_before, "the failed command left files in the model store"
    assert not (work / "pwned").exists(), "a pickle in the input was executed"


# ---- out of memory -------------------------------------------------------------------------------------

def _out_of_memory(*args, **kwargs):
    import torch

    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total "
                                      "capacity; 21.9 GiB already allocated)\nSee documentation for Memory "
                                      "Management")


def _assert_oom_advice(result):
    message = assert_error(result, "out of memory", "--window-batch", "--dtype")
    assert "2.00 GiB" not in message  # advice, not the raw allocator dump


def test_out_of_memory_in_pano_is_one_line_of_advice(tmp_path, monkeypatch):
    from worldgen.backends.procedural import ProceduralBackend

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ProceduralBackend, "generate", _out_of_memory)
    result = invoke(["pano", "hills", "--size", "64x32", "-o", tmp_path / "w.glb", "-q"])
    _assert_oom_advice(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing may be written after an OOM"


def test_out_of_memory_in_refine_is_one_line_of_advice(scene, monkeypatch):
    from worldgen.world import backends as _taskcli  # the task model loader (was cli/commands/_taskcli)

    class Exhausted:
        name, modality = "jointnet", "depth"
        refine = staticmethod(_out_of_memory)

    monkeypatch.setattr(_taskcli, "load_task_backend", lambda kw, scene=None: Exhausted())
    before = tree(scene)
    result = invoke(["refine", scene, "--scale", "1", "-q"])
    _assert_oom_advice(result)
    assert tree(scene) == before


def test_out_of_memory_in_the_tiled_sampler_at_one_window_reaches_the_user_as_advice(monkeypatch):
    """The sampler halves its window batch on OOM; at one window it gives up, and the CLI must turn
    that last OOM into advice (not a traceback)."""
    import torch

    from worldgen.sampler.tiled import TiledSampler, TilingRecipe

    from diffusers import DDIMScheduler

    calls = []

    def denoise(x, t, windows):
        calls.append(x.shape[0])
        _out_of_memory()

    sampler = TiledSampler(TilingRecipe(window=(8, 8)), window_batch=None)
    with pytest.raises(torch.OutOfMemoryError):
        sampler.sample(denoise, DDIMScheduler(), shape=(1, 4, 8, 32), steps=1, seed=0)
    assert calls[0] > 1 and calls[-1] == 1  # it did halve before giving up
    from worldgen.cli.main import _advice_for

    try:
        _out_of_memory()
    except torch.OutOfMemoryError as exc:
        advice = _advice_for(exc)
    assert advice is not None and "--window-batch" in advice and "\n" not in advice
