"""DeepFloyd-IF as a base (issue 23): `models tiny --family if` to a 360-degree IF panorama GLB, the
tiled pixel-space sampler's wrap, and parity with diffusers' IFPipeline on one window."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from worldgen.backend import GenerateRequest
from worldgen.cli.main import cli


@pytest.fixture(scope="module")
def if_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("if") / "tiny-if"
    result = CliRunner().invoke(cli, ["models", "tiny", str(folder), "--family", "if"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def backend(if_model):
    from worldgen.backends.jointnet.if_backend import DeepFloydBackend

    return DeepFloydBackend.from_settings({"model": str(if_model)})


def test_tiny_if_model_is_an_if_model_by_its_files(if_model):
    from worldgen.backends.jointnet.branch_files import checkpoint_family
    from worldgen.backends.jointnet.families import base_family

    assert not (if_model / "base" / "vae").exists()
    assert base_family(if_model / "base") == "if" and checkpoint_family(if_model) == "if"
    (if_model / "worldgen.json").rename(if_model / "meta.bak")  # without the metadata: from the UNet
    try:
        assert checkpoint_family(if_model) == "if"
    finally:
        (if_model / "meta.bak").rename(if_model / "worldgen.json")


def test_if_panorama_world_from_the_command_line(if_model, tmp_path):
    out = tmp_path / "if.glb"
    result = CliRunner().invoke(cli, ["pano", "a hill", "--model", str(if_model), "--size", "96x16", "--steps", "2",
                                      "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    version = json.loads((tmp_path / "if" / "scene.json").read_text())["versions"][-1]
    assert version["backend"]["settings"]["model"] == str(if_model) and version["modality"] == "depth"
    assert version["projection"]["span_deg"] == 360.0
    assert version["size"] == [384, 64]  # stage I at 96x16, stage II (the model's stage2/) 4x that
    assert version["backend"]["settings"]["sr_model"] == str((if_model / "stage2").resolve())
    depth = np.load(tmp_path / "if" / "v1" / "depth.npy")
    assert depth.shape == (64, 384, 1) and np.isfinite(depth).all()
    assert out.read_bytes()[:4] == b"glTF"


def _smoothing(pair, scheduler):
    """Noise predictions whose clean image is a blur of the window (replicate padding at its
    borders), with a zero variance value: smooth windows, smooth wherever windows overlap."""
    kernel = torch.ones(1, 1, 5, 5) / 25

    def guided(x_rgb, x_mod, t, *args, **kwargs):
        a = scheduler.alphas_cumprod[int(t)]
        out = []
        for x in (x_rgb, x_mod):
            x0 = x / a.sqrt()
            for _ in range(3):
                x0 = F.conv2d(F.pad(x0, (2, 2, 2, 2), mode="replicate"), kernel.repeat(3, 1, 1, 1), groups=3)
            out.append(torch.cat([(x - a.sqrt() * x0) / (1 - a).sqrt(), torch.zeros_like(x)], dim=1))
        return tuple(out)

    return guided


def _jump_ratio(layer: np.ndarray) -> float:
    jump = np.abs(layer[:, 0] - layer[:, -1]).mean()
    return float(jump / np.median(np.abs(np.diff(layer, axis=1)).mean(axis=(0, 2))))


def test_the_pixel_space_wrap_is_seamless_and_a_flat_span_is_not(backend, monkeypatch):
    monkeypatch.setattr(backend.pipe.jointnet, "guided", _smoothing(backend.pipe.jointnet, backend.pipe.scheduler))
    monkeypatch.setattr(backend, "stage2", None)  # stage I alone (stage II: the next test)
    run = lambda span: backend.generate(GenerateRequest(prompt="a hill", width=96, height=16, span_deg=span,
                                                        steps=8, seed=0, guidance=1.0))
    full, flat = run(360.0), run(120.0)
    assert _jump_ratio(full.image) < 2.0 and _jump_ratio(flat.image) > 3.0


def test_stage_two_keeps_the_wrap_seamless(backend):
    """Tiled super-resolution and the guided modality upsampling close the seam of a full circle and
    leave the two ends of a partial span unrelated."""
    from types import SimpleNamespace

    from worldgen.backends.jointnet.if_upscale import StageTwo, guided_upsample, super_resolve

    scheduler = backend.stage2.scheduler
    smooth = _smoothing(None, scheduler)

    def unet(model_in, t, encoder_hidden_states=None, class_labels=None):
        return SimpleNamespace(sample=smooth(model_in[:, :3], model_in[:, :3], t)[0])

    unet.config = backend.stage2.unet.config
    fake = StageTwo(unet, scheduler, backend.stage2.noising_scheduler)
    rng = np.random.default_rng(0)
    columns = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    low = (0.5 + 0.3 * np.sin(columns)[None, :, None] * np.ones((8, 1, 3))).astype(np.float32)
    text = (torch.zeros(1, 77, 32), None)
    run = lambda circular: super_resolve(fake, text, low + 0.01 * rng.standard_normal(low.shape).astype(np.float32),
                                         factor=4, steps=6, seed=0, guidance=1.0, circular=circular,
                                         device=torch.device("cpu"), dtype=torch.float32)
    full, flat = run(True), run(False)
    assert full.shape == (32, 128, 3) and _jump_ratio(full) < 2.0 and _jump_ratio(flat) > 3.0
    depth = guided_upsample(low[..., :1], full, circular=True, radius=8)
    assert depth.shape == (32, 128, 1) and _jump_ratio(depth) < 2.0


@torch.no_grad()
def test_one_window_matches_diffusers_if_pipeline(backend, monkeypatch):
    """With the exchange at zero the RGB branch is the IF UNet: a canvas of one window, stepped with
    the same noise, gives what diffusers' IFPipeline gives for the same UNet, text encoder and scheduler."""
    from diffusers import IFPipeline

    monkeypatch.setattr(backend, "stage2", None)  # stage I is what IFPipeline computes
    pair = backend.pipe.jointnet
    saved = {k: v.clone() for k, v in pair.state_dict().items()}
    for branch in (pair.unet, pair.jointnet):
        branch.zero_exchange_()
    try:
        size, steps, seed = pair.unet.config.sample_size, 3, 7
        ours = backend.generate(GenerateRequest(prompt="a hill", width=size, height=size, span_deg=60.0,
                                                steps=steps, seed=seed, guidance=4.0))
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, 12, size, size), generator=generator)  # what the tiled sampler draws first
        reference = IFPipeline(tokenizer=backend.pipe.tokenizer, text_encoder=backend.pipe.text_encoder,
                               unet=pair.unet, scheduler=backend._scheduler(None).scheduler, safety_checker=None,
                               feature_extractor=None, watermarker=None, requires_safety_checker=False)
        reference.prepare_intermediate_images = lambda *a, **k: noise[:, :6].reshape(2, 3, size, size)
        images = reference(prompt="a hill", num_inference_steps=steps, guidance_scale=4.0, num_images_per_prompt=2,
                           generator=generator, output_type="pt", clean_caption=False).images
    finally:
        pair.load_state_dict(saved)
    expected = (images[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()  # "pt" is the raw [-1, 1] output
    assert np.abs(ours.image - expected).max() < 1e-4


def test_models_add_takes_an_if_base(if_model, store_home, tmp_path):
    """An IF base has no vae/: `models add --base` accepts it by its family, and a wrong base is one line."""
    runner = CliRunner()
    result = runner.invoke(cli, ["models", "add", str(if_model), "--name", "tif", "--base", str(if_model / "base")])
    assert result.exit_code == 0, result.output
    assert "tif\tdepth\tgenerate" in runner.invoke(cli, ["models", "list"]).output
    empty = tmp_path / "empty-base"
    empty.mkdir()
    result = runner.invoke(cli, ["models", "add", str(if_model), "--name", "bad", "--base", str(empty)])
    assert result.exit_code == 1 and "missing vae" in result.output and "Traceback" not in result.output


def test_scene_tasks_run_on_an_if_model(backend, monkeypatch):
    """estimate, paint, refine and outpaint on the IF backend keep what they are told to keep, exactly."""
    from worldgen.sampler.requests import EstimateRequest, OutpaintRequest, PaintRequest, RefineRequest

    monkeypatch.setattr(backend, "stage2", None)
    rng = np.random.default_rng(0)
    image = rng.random((16, 48, 3)).astype(np.float32)
    estimated = backend.estimate(EstimateRequest(image=image, span_deg=120.0, steps=2, guidance=1.0), None)
    assert np.array_equal(estimated.image, image) and estimated.modalities["depth"].shape == (16, 48, 1)
    painted = backend.paint(PaintRequest(steps=2), estimated, None)
    assert np.array_equal(painted.modalities["depth"], estimated.modalities["depth"])
    assert not np.array_equal(painted.image, image)
    refined = backend.refine(RefineRequest(steps=2, scale=2.0, keep="image"), estimated, None)
    assert refined.size == (96, 32) and refined.modalities["depth"].shape == (32, 96, 1)
    wider = backend.outpaint(OutpaintRequest(steps=2, span_deg=240.0), estimated, None)
    assert wider.size[0] == 96 and wider.projection.span_deg == 240.0
    x = (96 - 48) // 2
    assert np.array_equal(wider.image[:, x:x + 48], image)  # the known part is kept bit for bit
