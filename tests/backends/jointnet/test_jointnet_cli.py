"""`worldgen models ...` and `worldgen pano --model` on a checkpoint written by `worldgen models tiny`."""

from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

from worldgen.cli.main import cli


@pytest.fixture
def runner():
    return CliRunner()


def _ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_models_tiny_add_list_default(runner, store_home, tmp_path, fixture_dir):
    ck = tmp_path / "tiny"
    _ok(runner.invoke(cli, ["models", "tiny", str(ck), "--inpaint", "--modality", "normal"]))
    assert (ck / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (ck / "base" / "vae" / "config.json").is_file()
    assert json.loads((ck / "worldgen.json").read_text()) == {"modality": "normal", "family": "sd"}
    result = runner.invoke(cli, ["models", "tiny", str(ck)])
    assert result.exit_code == 1 and "not empty" in result.output

    assert "no models registered" in _ok(runner.invoke(cli, ["models", "list"])).output
    _ok(runner.invoke(cli, ["models", "add", str(ck), "--name", "tiny", "--default"]))
    _ok(runner.invoke(cli, ["models", "add", str(fixture_dir / "model"), "--name", "official",
                            "--base", str(fixture_dir / "base"), "--modality", "depth"]))
    listing = _ok(runner.invoke(cli, ["models", "list"])).output.splitlines()
    assert listing[0].startswith("  official\tdepth\tgenerate")
    assert listing[1].startswith("* tiny\tnormal\tinpaint")
    assert _ok(runner.invoke(cli, ["models", "default", "official"])).output.strip() == "official"
    assert "procedural" in _ok(runner.invoke(cli, ["models", "default", "--clear"])).output
    result = runner.invoke(cli, ["models", "add", str(ck), "--name", "x", "--modality", "Bad Name"])
    assert result.exit_code == 2 and "modality" in result.output


def test_models_add_refuses_traversal_zip(runner, store_home, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    result = runner.invoke(cli, ["models", "add", str(archive), "--name", "evil"])
    assert result.exit_code == 1 and "outside" in result.output
    assert not (tmp_path / "escaped.txt").exists() and not (store_home.parent / "escaped.txt").exists()


def test_pano_with_tiny_model(runner, store_home, tiny_checkpoint, tmp_path):
    out = tmp_path / "world.glb"
    _ok(runner.invoke(cli, ["pano", "a small island", "--model", str(tiny_checkpoint), "--size", "256x64",
                            "--steps", "2", "-o", str(out), "-q"]))
    assert out.is_file() and out.stat().st_size > 0
    manifest = json.loads((tmp_path / "world" / "scene.json").read_text())
    version = manifest["versions"][-1]
    assert version["backend"]["name"] == "jointnet"
    assert version["backend"]["settings"]["model"] == str(tiny_checkpoint)


def test_registered_default_replaces_procedural(runner, store_home, tiny_checkpoint, tmp_path):
    _ok(runner.invoke(cli, ["models", "add", str(tiny_checkpoint), "--name", "tiny", "--default"]))
    out = tmp_path / "w.glb"
    _ok(runner.invoke(cli, ["pano", "a hill", "--size", "256x64", "--steps", "1", "-o", str(out), "-q"]))
    manifest = json.loads((tmp_path / "w" / "scene.json").read_text())
    assert manifest["versions"][-1]["backend"]["name"] == "jointnet"
