"""Region prompts on a tiny JointNet: each window's text embeddings are the prompts of the regions
it covers (spied on the model call), and the CLI's --region reaches the scene's record."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from worldgen.backend import GenerateRequest
from worldgen.cli.main import cli
from worldgen.geometry.regions import Region

WIDTH, HEIGHT = 256, 64          # latent 32 x 8: 8 windows of 8 x 8 cells per step, 11.25 degrees per cell
REGION = Region(prompt="a lighthouse on a cliff", azimuth=(0, 180), feather=8)


class Spy:
    """Records, per model call, which canvas cells each window row covers and the text it got."""

    def __init__(self, backend, monkeypatch):
        self.rows = []  # (set of latent columns, condition index, embedding)
        self.embeddings = []
        original = backend._denoiser
        pair = backend.pipe.jointnet
        guided = pair.guided

        def spying_denoiser(*args, **kwargs):
            inner = original(*args, **kwargs)

            def denoise(x, t, windows, conditions=None):
                columns = [set((windows.index[k] % (WIDTH // 8)).flatten().tolist()) for k in range(x.shape[0])]
                self.pending = (columns, conditions)
                return inner(x, t, windows, conditions)

            return denoise

        def spying_guided(x_rgb, x_joint, t, cond, *rest, **kw):
            columns, conditions = self.pending
            cond = cond.expand(x_rgb.shape[0], *cond.shape[1:]) if cond.shape[0] == 1 else cond
            for k in range(x_rgb.shape[0]):
                self.rows.append((columns[k], None if conditions is None else int(conditions[k]), cond[k].clone()))
            return guided(x_rgb, x_joint, t, cond, *rest, **kw)

        monkeypatch.setattr(backend, "_denoiser", spying_denoiser)
        monkeypatch.setattr(pair, "guided", spying_guided)


def _embedding(backend, prompt):
    return backend.pipe.encode_prompt(prompt, None, False)[0][0]


def _generate(backend, regions, steps=2):
    return backend.generate(GenerateRequest(prompt="a misty fjord", width=WIDTH, height=HEIGHT, steps=steps,
                                            regions=regions))


def test_windows_get_the_text_of_the_regions_they_cover(depth_backend, monkeypatch):
    spy = Spy(depth_backend, monkeypatch)
    result = _generate(depth_backend, [REGION])
    assert result.image.shape == (HEIGHT, WIDTH, 3) and np.isfinite(result.modalities["depth"]).all()
    base, region = _embedding(depth_backend, "a misty fjord"), _embedding(depth_backend, REGION.prompt)
    # Cell centres are 5.6 degrees from the region's edges, past the soft edge's half width (4 degrees):
    inside = set(range(0, 16))       # 0..180 degrees: the region's weight only
    outside = set(range(16, 32))     # 180..360 degrees: the panorama prompt's only
    seen_inside = seen_outside = straddling = 0
    for columns, condition, embedding in spy.rows:
        expected = base if condition == 0 else region
        assert torch.equal(embedding, expected)                      # the row's embedding is its condition's
        if columns <= inside:
            assert condition == 1                                    # a window inside: only the region's text
            seen_inside += 1
        elif columns <= outside:
            assert condition == 0                                    # a window outside: only the panorama's
            seen_outside += 1
        elif columns & inside and columns & outside or len(columns) == WIDTH // 8:
            straddling += 1
    assert seen_inside and seen_outside
    # Windows across the region's edge (and the whole-panorama window) run once per condition.
    both = {}
    for columns, condition, _ in spy.rows:
        both.setdefault(frozenset(columns), set()).add(condition)
    assert any(conditions == {0, 1} for conditions in both.values())
    assert straddling


def test_window_mode_gives_one_text_per_window(tiny_models, monkeypatch):
    from worldgen.backends.jointnet.spec import load

    backend = load({"model": str(tiny_models["depth"]), "region_mode": "window"})
    assert backend.settings()["region_mode"] == "window"
    spy = Spy(backend, monkeypatch)
    _generate(backend, [REGION], steps=1)
    per_window = {}
    for columns, condition, _ in spy.rows:
        per_window.setdefault(frozenset(columns), []).append(condition)
    assert all(len(conditions) == 1 for conditions in per_window.values())
    assert {c[0] for c in per_window.values()} == {0, 1}


def test_without_regions_every_window_gets_the_panorama_prompt(depth_backend, monkeypatch):
    spy = Spy(depth_backend, monkeypatch)
    _generate(depth_backend, [], steps=1)
    base = _embedding(depth_backend, "a misty fjord")
    assert spy.rows and all(torch.equal(e, base) and c is None for _, c, e in spy.rows)


def test_pano_region_option_reaches_the_scene(tmp_path, tiny_models):
    out = tmp_path / "fjord.glb"
    result = CliRunner().invoke(cli, ["pano", "a misty fjord", "--model", str(tiny_models["depth"]), "--size",
                                      f"{WIDTH}x{HEIGHT}", "--steps", "1", "-q", "-o", str(out),
                                      "--region", "0:90=a lighthouse on a cliff",
                                      "--region", "200:260@0:30*2=a castle"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "fjord" / "scene.json").read_text())["versions"][0]
    assert record["params"]["regions"] == [
        {"prompt": "a lighthouse on a cliff", "weight": 1.0, "feather": 8.0, "azimuth": [0.0, 90.0]},
        {"prompt": "a castle", "weight": 2.0, "feather": 8.0, "azimuth": [200.0, 260.0], "elevation": [0.0, 30.0]}]
    assert out.is_file()


@pytest.mark.parametrize("region, fragment", [("0:90", "is not"), ("0:90@40:10=x", "elevation")])
def test_pano_refuses_bad_regions_in_one_line(tmp_path, region, fragment):
    result = CliRunner().invoke(cli, ["pano", "a misty fjord", "--backend", "procedural", "--size", "256x64",
                                      "-o", str(tmp_path / "x.glb"), "--region", region])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0]
