"""N modality branches (issue 23): the official pair as N = 1, added branches that change nothing at
first, files that say what a checkpoint is, and `pano` reading the model's own modalities."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from worldgen.backends.jointnet.branch_files import (attach_branches, checkpoint_family, checkpoint_modalities,
                                                     save_branches)
from worldgen.backends.jointnet.branches import JointNetBranches
from worldgen.backends.jointnet.loading import load_pair
from worldgen.cli.main import cli


def _inputs(reference, branches: int, masked: bool):
    r = reference
    x_joint = torch.cat([r["x_joint"]] + [torch.randn_like(r["x_joint"]) for _ in range(branches - 1)], dim=1)
    extra = {}
    if masked:
        extra = dict(mask_rgb=r["mask_rgb"], masked_rgb=r["masked_rgb"],
                     mask_joint=r["mask_joint"].repeat(1, branches, 1, 1),
                     masked_joint=r["masked_joint"].repeat(1, branches, 1, 1))
    return (r["x_rgb"], x_joint, r["t"], r["ctx"]), extra


@pytest.mark.parametrize("folder,masked", [("model", False), ("model_inpaint", True)])
@torch.no_grad()
def test_official_pair_is_the_one_branch_case_and_new_branches_change_nothing(fixture_dir, reference, folder, masked):
    pair = load_pair(fixture_dir / folder)
    args, extra = _inputs(reference, 1, masked)
    eps_rgb, eps_mod = pair(*args, **extra)
    model = JointNetBranches.from_pair(pair)
    same_rgb, same_mod = model(*args, **extra)
    assert torch.equal(same_rgb, eps_rgb) and torch.equal(same_mod, eps_mod)  # bit for bit, N = 1

    grown = model.with_new_branch().with_new_branch()
    args, extra = _inputs(reference, 3, masked)
    rgb3, mods3 = grown(*args, **extra)
    assert mods3.shape[1] == 12
    assert torch.equal(rgb3, eps_rgb) and torch.equal(mods3[:, :4], eps_mod)  # output-preserving

    # The test can fail: the link's RGB -> branch layers move only that branch's prediction ...
    torch.nn.init.normal_(grown.links[0].jointnet_mid_block.weight, std=0.1)
    rgb, mods = grown(*args, **extra)
    assert torch.equal(rgb, eps_rgb) and not torch.equal(mods[:, 4:8], mods3[:, 4:8])
    # ... and what the branch sends to the RGB branch moves the RGB prediction.
    torch.nn.init.normal_(grown.branches[1].jointnet_mid_block.weight, std=0.1)
    assert not torch.equal(grown(*args, **extra)[0], eps_rgb)


@torch.no_grad()
def test_added_branch_round_trips_through_files(fixture_dir, reference, tmp_path):
    model = JointNetBranches.from_pair(load_pair(fixture_dir / "model")).with_new_branch()
    for module in model.new_parts(1):
        for p in module.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_branches(model, tmp_path / "ck", ["depth", "edges"], family="sd")
    assert checkpoint_modalities(tmp_path / "ck") == ["depth", "edges"]
    assert checkpoint_family(tmp_path / "ck") == "sd"
    assert checkpoint_family(fixture_dir / "model") == "sd"  # official: from the branch config
    assert load_pair(tmp_path / "ck").unet is not None  # the pair loaders ignore the added folder
    loaded = attach_branches(load_pair(tmp_path / "ck"), tmp_path / "ck")
    args, _ = _inputs(reference, 2, False)
    for a, b in zip(model(*args), loaded(*args)):
        assert torch.equal(a, b)
    only_edges = loaded.select([1])
    assert only_edges.count == 1 and not only_edges.own_link
    x_rgb, x_joint, t, ctx = args
    assert only_edges(x_rgb, x_joint[:, 4:], t, ctx)[1].shape == (2, 4, 16, 24)


def _ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_pano_reads_the_model_modality(tmp_path, store_home):
    """`models tiny --modality normal` then `pano` without --modality: a normal layer, no error."""
    runner = CliRunner()
    ck = tmp_path / "tiny-normal"
    _ok(runner.invoke(cli, ["models", "tiny", str(ck), "--modality", "normal"]))
    out = tmp_path / "n.glb"
    _ok(runner.invoke(cli, ["pano", "a hill", "--model", str(ck), "--size", "256x64", "--steps", "1",
                            "-o", str(out), "-q"]))
    manifest = json.loads((tmp_path / "n" / "scene.json").read_text())
    assert manifest["versions"][-1]["modality"] == "normal"
    assert (tmp_path / "n" / "v1" / "normal.npy").is_file() and out.stat().st_size > 0
    result = runner.invoke(cli, ["pano", "a hill", "--model", str(ck), "--modality", "depth", "--size", "256x64",
                                 "--steps", "1", "-o", str(tmp_path / "d.glb"), "-q"])
    assert result.exit_code == 1 and "generates normal" in result.output and "Traceback" not in result.output


def test_a_registered_modality_overrides_the_files(fixture_dir, store_home):
    from worldgen.backends.jointnet.store import checkpoint_modality

    assert checkpoint_modality(fixture_dir / "model") == "depth"  # official: no worldgen.json
    _ok(CliRunner().invoke(cli, ["models", "add", str(fixture_dir / "model"), "--name", "n", "--no-convert",
                                 "--base", str(fixture_dir / "base"), "--modality", "normal"]))
    assert checkpoint_modality(fixture_dir / "model") == "normal"
    assert checkpoint_modalities(fixture_dir / "model") == ["normal"]
