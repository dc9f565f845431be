"""TrainConfig: the stage picks the method's defaults; explicit values win; bad values name the fix."""

from __future__ import annotations

import pytest

from worldgen.errors import UserInputError
from worldgen.training.config import TrainConfig


def make(tmp_path, **kw):
    (tmp_path / "base").mkdir(exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    return TrainConfig(modality="depth", base=tmp_path / "base", data=tmp_path / "data", out=tmp_path / "out", **kw)


@pytest.mark.parametrize("stage, lr, dropout, rgb", [("1", 1e-4, 0.15, False), ("2", 1e-5, 0.5, True),
                                                      ("inpaint", 1e-5, 0.15, True)])
def test_stage_defaults(tmp_path, stage, lr, dropout, rgb):
    cfg = make(tmp_path, stage=stage).resolved()
    assert (cfg.lr, cfg.text_dropout, cfg.train_rgb, cfg.warmup_steps, cfg.noise_offset) == (lr, dropout, rgb, 1000, 0.05)
    assert cfg.cache_dir == tmp_path / "out" / "estimates"


def test_explicit_values_win(tmp_path):
    cfg = make(tmp_path, stage="2", lr=3e-5, text_dropout=0.1, train_rgb=False).resolved()
    assert (cfg.lr, cfg.text_dropout, cfg.train_rgb) == (3e-5, 0.1, False)


@pytest.mark.parametrize("bad, match", [({"resolution": 100}, "multiple of 8"), ({"stage": "3"}, "--stage"),
                                        ({"text_dropout": 1.5}, "probability"), ({"steps": 0}, "--steps"),
                                        ({"min_crop": 0.0}, "--min-crop")])
def test_bad_values_name_the_fix(tmp_path, bad, match):
    with pytest.raises(UserInputError, match=match):
        make(tmp_path, **bad).resolved()


def test_missing_folders_are_named(tmp_path):
    cfg = TrainConfig(modality="depth", base=tmp_path / "nope", data=tmp_path, out=tmp_path / "out")
    with pytest.raises(UserInputError, match="Stable Diffusion folder"):
        cfg.resolved()
