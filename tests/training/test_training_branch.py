"""`worldgen train --modality edges --from MODEL` (issue 23): a new branch beside a depth model.

At initialisation the grown model predicts exactly what the depth model did; after training the RGB
and depth branches' weights are those of the original files; the exported model makes RGB, depth
and edges in one `pano` run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from worldgen.cli.main import cli


def _tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


@torch.no_grad()
def test_new_branch_preserves_the_depth_model_at_initialisation(tiny_checkpoint, edges_installed):
    from worldgen.backends.jointnet.branch_files import attach_branches
    from worldgen.backends.jointnet.loading import load_pair
    from worldgen.training.branch import build_new_branch

    trained = build_new_branch(tiny_checkpoint, "edges")  # RGB + the new branch, as the run trains it
    original = load_pair(tiny_checkpoint)
    full = attach_branches(load_pair(tiny_checkpoint), tiny_checkpoint)
    grown = type(full)(full.unet, [full.jointnet, trained.branches[0]], [None, trained.link(0)])
    g = torch.Generator().manual_seed(0)
    x_rgb, x_depth, x_edges = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    ctx, t = torch.randn(2, 77, 32, generator=g), torch.tensor(500)
    eps_rgb, eps_depth = original(x_rgb, x_depth, t, ctx)
    rgb, mods = grown(x_rgb, torch.cat([x_depth, x_edges], 1), t, ctx)
    assert torch.equal(rgb, eps_rgb) and torch.equal(mods[:, :4], eps_depth)
    # Alone beside the RGB branch, the new branch leaves the RGB prediction as the bare UNet's:
    assert torch.equal(trained(x_rgb, x_edges, t, ctx)[0], original.unet(x_rgb, t, ctx).sample)
    with pytest.raises(Exception, match="already generates 'depth'"):
        build_new_branch(tiny_checkpoint, "depth")


def test_train_from_adds_a_branch_and_pano_makes_every_layer(tmp_path, make_images, tiny_checkpoint,
                                                              edges_installed):
    data = tmp_path / "photos"
    make_images(data, count=2, size=(32, 32))
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--modality", "edges", "--from", str(tiny_checkpoint), "--data", str(data), "--out", str(out),
        "--steps", "2", "--resolution", "32", "--batch-size", "2", "--num-workers", "0", "--warmup-steps", "0",
        "--validation-every", "0", "--validation-steps", "1", "--report-to", "none", "--lr", "1e-2"])
    assert result.exit_code == 0, result.output
    model = out / "model"
    meta = json.loads((model / "worldgen.json").read_text())
    assert meta == {"modality": "depth", "modalities": ["depth", "edges"], "family": "sd"}
    for sub in ("unet", "jointnet"):  # RGB and depth branches: the original weights, bit for bit
        before, after = _tensors(tiny_checkpoint / sub), _tensors(model / sub)
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    new = _tensors(model / "jointnet_edges")
    assert any(new[k].abs().sum() > 0 for k in new if k.startswith("jointnet_mid_block"))  # it trained

    world = tmp_path / "w.glb"
    result = CliRunner().invoke(cli, ["pano", "a hill", "--model", str(model), "--size", "128x32", "--steps", "1",
                                      "-o", str(world), "-q"])
    assert result.exit_code == 0, result.output
    layers = sorted(p.name for p in (tmp_path / "w" / "v1").glob("*.npy"))
    assert layers == ["depth.npy", "edges.npy"]
    assert np.isfinite(np.load(tmp_path / "w" / "v1" / "edges.npy")).all() and world.stat().st_size > 0
    manifest = json.loads((tmp_path / "w" / "scene.json").read_text())
    assert manifest["versions"][-1]["modality"] == "depth"
    _check_layers_travel(world.read_bytes(), tmp_path / "w")


def _validator():
    """The Khronos validator harness of tests/exporters (loaded by path: conftests have no import name)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "exporters" / "conftest.py"
    spec = importlib.util.spec_from_file_location("exporters_kit", path)
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    return kit


def _check_layers_travel(glb: bytes, scene_dir):
    """The edges layer is a texture and a material variant in the GLB and a property in the PLY."""
    import os
    import subprocess

    from worldgen.exporters.ply import export_ply
    from worldgen.scene.store import Scene

    kit = _validator()
    gltf = kit.glb_document(glb)
    variants = [v["name"] for v in gltf.extensions["KHR_materials_variants"]["variants"]]
    assert variants == ["rgb", "edges"] and "KHR_materials_variants" in gltf.extensionsUsed
    assert [image.name for image in gltf.images] == ["panorama", "edges"]
    terrain = next(m for m in gltf.meshes if m.name == "terrain").primitives[0]
    mappings = terrain.extensions["KHR_materials_variants"]["mappings"]
    edges_material = gltf.materials[mappings[1]["material"]]
    assert gltf.textures[edges_material.pbrMetallicRoughness.baseColorTexture.index].source == 1
    found, reason = kit.find_gltf_validator()
    if found is None:
        pytest.skip(reason)
    node, package = found
    env = dict(os.environ, WORLDGEN_VALIDATOR_PACKAGE=str(package))
    proc = subprocess.run([node, "-e", kit._VALIDATE_JS], input=glb, capture_output=True, timeout=120, env=env)
    issues = json.loads(proc.stdout)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]

    header = export_ply(Scene.open(scene_dir).load(), {})[:2000].split(b"end_header")[0].decode()
    assert "property float edges" in header and "property float depth" not in header


def test_edges_world_gets_its_depth_and_depth_command_adds_one(tmp_path, tiny_checkpoint, edges_installed):
    """`pano --modality edges` with a depth+edges model: the world gets depth from the model's own
    depth branch (no exit 1 after writing the scene); `worldgen depth SCENE` adds depth as a version."""
    from worldgen.backends.jointnet.branch_files import attach_branches, save_branches
    from worldgen.backends.jointnet.loading import load_pair
    from worldgen.scene.snapshot import Snapshot
    from worldgen.geometry.projection import CylindricalProjection
    from worldgen.sampler.canvas import resize_nearest
    from worldgen.scene.store import Scene

    model = tmp_path / "rgbde"
    grown = attach_branches(load_pair(tiny_checkpoint), tiny_checkpoint).with_new_branch()
    save_branches(grown, model, ["depth", "edges"], family="sd")
    (model / "base").symlink_to(tiny_checkpoint / "base")
    out = tmp_path / "e.glb"
    result = CliRunner().invoke(cli, ["pano", "a hill", "--model", str(model), "--modality", "edges",
                                      "--size", "128x32", "--steps", "1", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "e" / "v1").glob("*.npy")) == ["depth.npy", "edges.npy"]
    assert out.stat().st_size > 0
    # A refine runs the edges branch the scene was made with and keeps the depth layer it does not make.
    result = CliRunner().invoke(cli, ["refine", str(tmp_path / "e"), "--steps", "1", "-q"])
    assert result.exit_code == 0, result.output
    world = Scene.open(tmp_path / "e")
    refined, first = world.load(2), world.load(1)
    assert refined.size == (256, 64)  # refine doubles the size by default; the kept layer follows
    assert np.array_equal(refined.modalities["depth"], resize_nearest(first.modalities["depth"], 256, 64))
    assert refined.modalities["edges"].shape == (64, 256, 1)

    rng = np.random.default_rng(0)
    image = rng.random((32, 128, 3)).astype(np.float32)
    edges = rng.random((32, 128, 1)).astype(np.float32)
    flat = Snapshot(image=image, modalities={"edges": edges}, projection=CylindricalProjection(128, 32, 360.0),
                    prompt="a hill")
    scene = Scene.create(tmp_path / "flat", flat, operation="import", prompt="a hill", seed=0, backend="none",
                         backend_settings={}, modality="edges")
    result = CliRunner().invoke(cli, ["depth", str(scene.path), "--model", str(tiny_checkpoint), "--steps", "1", "-q"])
    assert result.exit_code == 0, result.output
    reopened = Scene.open(scene.path)
    v2, v1 = reopened.load(2), reopened.load(1)
    assert set(v2.modalities) == {"edges", "depth"} and set(v1.modalities) == {"edges"}
    assert np.array_equal(v2.image, v1.image) and np.array_equal(v2.modalities["edges"], v1.modalities["edges"])
    result = CliRunner().invoke(cli, ["depth", str(scene.path), "-o", str(tmp_path / "x"), "-q"])
    assert result.exit_code == 2 and "drop -o" in result.output  # options that do not go together: usage (issue 25)


def test_stage_one_on_an_if_base_trains_in_pixel_space(tmp_path, make_images, make_depth_files):
    """`train --base IF_BASE`: a pixel-space JointNet (no VAE) whose export makes an IF world."""
    from worldgen.backends.jointnet.branch_files import checkpoint_family

    tiny = tmp_path / "tiny-if"
    assert CliRunner().invoke(cli, ["models", "tiny", str(tiny), "--family", "if"]).exit_code == 0
    data = tmp_path / "photos"
    make_depth_files(make_images(data, count=2, size=(24, 24)))
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "train", "--modality", "depth", "--base", str(tiny / "base"), "--data", str(data), "--out", str(out),
        "--steps", "2", "--resolution", "16", "--batch-size", "2", "--num-workers", "0", "--warmup-steps", "0",
        "--validation-every", "0", "--validation-steps", "1", "--report-to", "none"])
    assert result.exit_code == 0, result.output
    model = out / "model"
    assert checkpoint_family(model) == "if" and not (model / "base" / "vae").exists()
    assert (out / "samples" / "step-00000002.png").is_file()
    world = tmp_path / "w.glb"
    result = CliRunner().invoke(cli, ["pano", "a hill", "--model", str(model), "--size", "64x16", "--steps", "1",
                                      "-o", str(world), "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "w" / "scene.json").read_text())["versions"][-1]["size"] == [64, 16]


def test_an_edges_only_model_gets_depth_from_the_registered_depth_model(tmp_path, tiny_checkpoint, edges_installed,
                                                                         monkeypatch):
    """No depth branch in the model: the registered default depth model estimates it (RGB kept)."""
    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    edges = tmp_path / "edges-only"
    assert runner.invoke(cli, ["models", "tiny", str(edges), "--modality", "edges"]).exit_code == 0
    result = runner.invoke(cli, ["pano", "a hill", "--model", str(edges), "--size", "128x32", "--steps", "1",
                                 "-o", str(tmp_path / "x.glb"), "-q"])  # nothing to estimate depth with yet
    assert result.exit_code == 1 and "no depth or normal layer" in result.output and not (tmp_path / "x").exists()
    assert runner.invoke(cli, ["models", "add", str(tiny_checkpoint), "--name", "rgbd", "--default"]).exit_code == 0
    result = runner.invoke(cli, ["pano", "a hill", "--model", str(edges), "--size", "128x32", "--steps", "1",
                                 "-o", str(tmp_path / "e.glb"), "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "e" / "v1").glob("*.npy")) == ["depth.npy", "edges.npy"]
