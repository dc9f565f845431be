"""RGB + depth + normals at once: one RGB branch with two modality branches."""

import numpy as np
import pytest
import torch

from worldgen.backend import GenerateRequest
from worldgen.errors import ModelError, UserInputError
from worldgen.export_files import export_bytes
from worldgen.geometry.normals import camera_to_world_normals, distance_normals
from worldgen.geometry.world import build_world
from worldgen.sampler.requests import EditRequest, RefineRequest


@pytest.fixture(scope="module")
def pairs(tiny_models):
    from worldgen.backends.jointnet.loading import load_pair

    return {name: load_pair(path) for name, path in tiny_models.items()}


def _inputs(n=2, c=4, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, h, w, generator=g) for _ in range(3)] + [torch.randn(n, 7, 32, generator=g)]


def test_with_two_identical_partners_the_triple_is_exactly_the_pair(pairs):
    from worldgen.backends.jointnet.multimodal import make_triple

    pair = pairs["depth"]
    triple = make_triple(pair, pair)
    x_rgb, x_mod, _, ctx = _inputs()
    with torch.no_grad():
        eps_rgb, eps_mod = pair(x_rgb, x_mod, 500, ctx)
        tri_rgb, tri_mods = triple(x_rgb, torch.cat([x_mod, x_mod], 1), 500, ctx)
    assert torch.equal(tri_rgb, eps_rgb)
    assert torch.equal(tri_mods[:, :4], eps_mod) and torch.equal(tri_mods[:, 4:], eps_mod)


def test_the_second_branch_takes_part_in_every_prediction(pairs):
    from worldgen.backends.jointnet.multimodal import make_triple

    triple = make_triple(pairs["depth"], pairs["normal"])
    x_rgb, x_a, x_b, ctx = _inputs()
    with torch.no_grad():
        rgb_1, mods_1 = triple(x_rgb, torch.cat([x_a, x_b], 1), 500, ctx)
        rgb_2, mods_2 = triple(x_rgb, torch.cat([x_a, x_b * 0.5], 1), 500, ctx)
        pair_rgb, pair_depth = pairs["depth"](x_rgb, x_a, 500, ctx)
    assert mods_1.shape == (2, 8, 8, 8) and torch.isfinite(mods_1).all()
    assert not torch.equal(rgb_1, rgb_2)              # the normal latent reaches the RGB branch (exchange)
    assert not torch.equal(mods_1[:, :4], mods_2[:, :4])  # and through it, the depth branch
    assert not torch.allclose(mods_1[:, 4:], pair_depth)  # the normal branch is its own model


def test_the_backend_returns_three_layers(tri_backend, tiny_models):
    assert tri_backend.modalities == ("depth", "normal")
    assert tri_backend.settings()["extra_model"] == str(tiny_models["normal"])
    result = tri_backend.generate(GenerateRequest(prompt="a red canyon", width=128, height=64, steps=2))
    assert set(result.modalities) == {"depth", "normal"}
    assert result.image.shape == (64, 128, 3) and result.modalities["depth"].shape == (64, 128, 1)
    normal = result.modalities["normal"]
    assert normal.shape == (64, 128, 3) and np.allclose(np.linalg.norm(normal, axis=-1), 1.0, atol=1e-4)
    assert np.isfinite(result.modalities["depth"]).all() and result.modalities["depth"].std() > 0
    # The exporters use both: distance from the depth layer, shading normals from the normal layer.
    world = build_world(result)
    assert np.allclose(world.normals[~world.sky], camera_to_world_normals(normal, result.projection)[~world.sky])
    from_depth = distance_normals(world.distance, result.projection, world.rows, world.columns)
    assert not np.allclose(world.normals[~world.sky], from_depth[~world.sky], atol=0.05)
    assert export_bytes(result, "glb")[:4] == b"glTF"


def test_refine_and_edit_keep_both_layers(tri_backend):
    base = tri_backend.generate(GenerateRequest(prompt="a red canyon", width=128, height=64, steps=1))
    refined = tri_backend.refine(RefineRequest(scale=1.0, steps=1, keep="modality"), base)
    assert np.array_equal(refined.modalities["normal"], base.modalities["normal"])
    assert np.array_equal(refined.modalities["depth"], base.modalities["depth"])
    mask = np.zeros((64, 128), bool)
    mask[20:40, 30:70] = True
    edited = tri_backend.edit(EditRequest(mask=mask, steps=1), base)
    for name in ("depth", "normal"):
        assert np.array_equal(edited.modalities[name][~mask], base.modalities[name][~mask])


def test_mismatched_rgb_branches_are_refused(tiny_models):
    from worldgen.backends.jointnet.spec import load

    with pytest.raises(ModelError) as info:
        load({"model": str(tiny_models["depth"]), "extra_model": str(tiny_models["other_rgb"])})
    message = str(info.value)
    assert "different RGB branches" in message and "weights " in message and "\n" not in message


def test_two_checkpoints_of_the_same_modality_are_refused(tiny_models):
    from worldgen.backends.jointnet.spec import load

    with pytest.raises(UserInputError, match="both checkpoints generate 'depth'"):
        load({"model": str(tiny_models["depth"]), "extra_model": str(tiny_models["depth"])})


def test_a_scene_missing_a_layer_names_the_fix(tri_backend):
    from worldgen.scene.snapshot import Snapshot
    from worldgen.geometry.projection import CylindricalProjection

    snapshot = Snapshot(image=np.zeros((64, 128, 3), np.float32), modalities={"depth": np.zeros((64, 128, 1), np.float32)},
                        projection=CylindricalProjection(128, 64))
    with pytest.raises(UserInputError, match="no 'normal' layer"):
        tri_backend.refine(RefineRequest(scale=1.0, steps=1), snapshot)


def test_pano_extra_model_makes_three_layers_and_refuses_a_different_rgb_branch(tmp_path, tiny_models):
    from click.testing import CliRunner

    from worldgen.cli.main import cli
    from worldgen.scene.store import Scene

    out = tmp_path / "tri.glb"
    args = ["pano", "a canyon", "--model", str(tiny_models["depth"]), "--size", "128x64", "--steps", "1", "-q"]
    result = CliRunner().invoke(cli, args + ["--extra-model", str(tiny_models["normal"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    snapshot = Scene.open(tmp_path / "tri").load()
    assert set(snapshot.modalities) == {"depth", "normal"} and out.read_bytes()[:4] == b"glTF"
    bad = CliRunner().invoke(cli, args + ["--extra-model", str(tiny_models["other_rgb"]), "-o", str(tmp_path / "x.glb")])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert not (tmp_path / "x").exists()
