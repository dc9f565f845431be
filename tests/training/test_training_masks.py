"""Random inpainting masks: binary, latent-sized, and covering every task, conversions included."""

from __future__ import annotations

import pytest
import torch

from worldgen.training.masks import MASK_KINDS, masked_latents, random_masks


def test_masks_are_binary_and_shaped():
    rgb, mod, kinds = random_masks(64, 6, 10, torch.Generator().manual_seed(0))
    assert rgb.shape == mod.shape == (64, 1, 6, 10) and rgb.dtype == torch.float32
    assert set(rgb.unique().tolist()) <= {0.0, 1.0} and set(mod.unique().tolist()) <= {0.0, 1.0}
    assert len(kinds) == 64 and set(kinds) <= set(MASK_KINDS)


def test_each_kind_means_what_it_says():
    rgb, mod, kinds = random_masks(300, 8, 8, torch.Generator().manual_seed(1))
    assert set(kinds) == set(MASK_KINDS)  # every task is drawn
    for r, m, kind in zip(rgb, mod, kinds):
        if kind == "rgb_to_modality":  # whole RGB known, whole modality generated
            assert r.sum() == 0 and m.min() == 1
        elif kind == "modality_to_rgb":
            assert r.min() == 1 and m.sum() == 0
        elif kind == "everything":
            assert r.min() == 1 and m.min() == 1
        elif kind in ("shared", "outpaint"):
            assert torch.equal(r, m) and 0 < r.sum() < r.numel()
        else:
            assert r.sum() > 0 and m.sum() > 0
        if kind == "outpaint":  # a band touching the left or right edge, full height
            cols = r[0].amax(0)
            assert (r[0].amin(0) == cols).all() and (cols[0] == 1 or cols[-1] == 1)


def test_same_generator_same_masks():
    a = random_masks(8, 4, 4, torch.Generator().manual_seed(5))
    b = random_masks(8, 4, 4, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_weights_choose_the_tasks():
    _, _, kinds = random_masks(50, 4, 4, torch.Generator().manual_seed(2), weights={"rgb_to_modality": 1.0})
    assert set(kinds) == {"rgb_to_modality"}
    with pytest.raises(ValueError, match="unknown mask kinds"):
        random_masks(2, 4, 4, weights={"sideways": 1.0})


def test_masked_latents_keep_only_the_known_part():
    latents = torch.randn(2, 4, 3, 3)
    mask = torch.zeros(2, 1, 3, 3)
    mask[:, :, 1] = 1.0
    kept = masked_latents(latents, mask)
    assert (kept[:, :, 1] == 0).all() and torch.equal(kept[:, :, [0, 2]], latents[:, :, [0, 2]])
