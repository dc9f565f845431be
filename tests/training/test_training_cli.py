"""`worldgen train` and `python -m worldgen.training`: the command as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from click.testing import CliRunner

from worldgen.cli.main import cli


def test_command_module_imports_no_torch():
    code = "import sys, worldgen.cli.commands.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_module_entry_point_is_the_train_command():
    """The form `accelerate launch -m worldgen.training` starts on every GPU."""
    run = subprocess.run([sys.executable, "-m", "worldgen.training", "--help"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "--modality" in run.stdout and "--resume" in run.stdout and "accelerate launch" in run.stdout


def test_bad_input_is_one_line_naming_the_fix(tmp_path, image_folder, tiny_checkpoint):
    runner = CliRunner()
    args = ["train", "--modality", "depth", "--base", str(tiny_checkpoint / "base"), "--data", str(image_folder),
            "--out", str(tmp_path / "run")]
    result = runner.invoke(cli, args + ["--resolution", "30"])
    assert result.exit_code == 1 and "multiple of 8" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, args + ["--estimator-option", "model"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
    result = runner.invoke(cli, args[:2] + ["nosuch"] + args[3:])
    assert result.exit_code == 1 and "'nosuch'" in result.output and "installed: " in result.output


def test_third_party_modality_trains_end_to_end_from_images_alone(tmp_path, make_images, tiny_checkpoint,
                                                                   edges_installed):
    """worldgen-edges, installed as a separate distribution, learned from plain captioned images:
    every edge map comes from its estimator (cached), and the export generates RGB + edges."""
    from worldgen.backends.jointnet import JointNetPipeline, checkpoint_modality

    data = tmp_path / "photos"
    make_images(data, count=4, size=(40, 48))
    out = tmp_path / "edges-run"
    args = ["train", "--modality", "edges", "--base", str(tiny_checkpoint / "base"), "--data", str(data),
            "--out", str(out), "--steps", "3", "--resolution", "32", "--batch-size", "2", "--num-workers", "0",
            "--warmup-steps", "0", "--validation-every", "0", "--validation-steps", "2", "--report-to", "none"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    export = out / "model"
    assert result.stdout.strip().splitlines()[-1] == str(export)
    assert "samples/s" in result.stderr  # the throughput line the GPU run reports

    assert not list(data.glob("*.edges.*"))  # nothing but images and captions was given ...
    cached = list((out / "estimates" / "edges").rglob("*.npy"))
    assert len(cached) == 4  # ... so the estimator made every map, once
    maps = [np.load(p) for p in cached]
    assert all(m.shape == (40, 48, 1) and 0 <= m.min() and m.max() <= 1 and m.max() > 0 for m in maps)

    assert checkpoint_modality(export) == "edges"
    assert (out / "samples" / "step-00000003.png").is_file()
    pipe = JointNetPipeline.from_pretrained(export)
    generated = pipe("a test picture", height=32, width=32, num_inference_steps=2,
                     generator=torch.Generator().manual_seed(0))
    edges = edges_installed.decode(generated.modality[0] * 2 - 1)
    assert edges.shape == (32, 32, 1) and np.isfinite(edges).all()

    again = CliRunner().invoke(cli, args[:-8] + ["--steps", "4", "--resume"] + args[-6:])
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.stderr and "3->4" in again.stderr
