"""The depth estimator: transformers' depth-estimation pipeline, output as per-image disparity."""

import numpy as np
import pytest

from worldgen.errors import ModelError, UserInputError
from worldgen.plugins import depth


def test_a_tiny_random_dpt_gives_normalised_disparity_at_image_size(tiny_dpt):
    rgb = np.random.default_rng(0).random((24, 40, 3)).astype(np.float32)
    out = depth.SPEC.estimator(rgb, model=str(tiny_dpt))
    assert out.shape == (24, 40, 1) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() == 0.0 and out.max() == 1.0  # stretched per image
    assert np.ptp(out) > 0 and len(np.unique(out)) > 10  # a real map, not a constant


def test_a_built_pipeline_can_be_reused_for_many_images(tiny_dpt):
    from transformers import pipeline

    pipe = pipeline("depth-estimation", model=str(tiny_dpt))
    rgb = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    by_pipeline = depth.SPEC.estimator(rgb, model=pipe)
    by_path = depth.SPEC.estimator(rgb, model=tiny_dpt)
    assert np.allclose(by_pipeline, by_path, atol=1e-6)


def _constant_pipeline(prediction):
    import torch

    return lambda image: {"predicted_depth": torch.as_tensor(prediction, dtype=torch.float32)}


def test_predictions_are_resized_and_stretched_to_zero_one():
    low_res = np.array([[2.0, 4.0], [6.0, 10.0]])[None]  # batch axis, model resolution
    out = depth.estimate(np.zeros((8, 8, 3), np.float32), model=_constant_pipeline(low_res))
    assert out.shape == (8, 8, 1)
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0, 0] == 0.0 and out[-1, -1, 0] == 1.0  # orientation kept through the resize


def test_metric_depth_models_are_inverted_so_near_is_bright():
    distance = np.array([[1.0, 2.0], [4.0, 8.0]])
    out = depth.estimate(np.zeros((2, 2, 3), np.float32), model=_constant_pipeline(distance), prediction="depth")
    expected = (1 / distance - 1 / 8) / (1 - 1 / 8)
    assert np.allclose(out[..., 0], expected, atol=1e-6)


def test_a_flat_prediction_is_all_zero_not_nan():
    out = depth.estimate(np.zeros((4, 4, 3), np.float32), model=_constant_pipeline(np.full((4, 4), 3.0)))
    assert np.array_equal(out, np.zeros((4, 4, 1), np.float32))


def test_missing_model_names_the_option():
    with pytest.raises(UserInputError, match="pass model=<Hub id or local folder"):
        depth.SPEC.estimator(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UserInputError, match="prediction='metres'"):
        depth.SPEC.estimator(np.zeros((4, 4, 3), np.float32), model="x", prediction="metres")


def test_an_unusable_model_folder_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="could not load depth model"):
        depth.SPEC.estimator(np.zeros((4, 4, 3), np.float32), model=tmp_path)


def test_a_named_model_is_loaded_once_per_process(tiny_dpt, monkeypatch):
    import transformers

    from worldgen.plugins import depth

    depth._pipeline_for.cache_clear()
    loads = []
    real = transformers.pipeline

    def counting(*args, **kwargs):
        loads.append(kwargs.get("model"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers, "pipeline", counting)
    rgb = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
    first = depth.estimate(rgb, model=str(tiny_dpt))
    second = depth.estimate(rgb, model=str(tiny_dpt))
    assert loads == [str(tiny_dpt)] and np.array_equal(first, second)
