"""Window layouts: coverage, wrap, weights, and gather/scatter round trips."""

import pytest
import torch

from worldgen.sampler.windows import axis_starts, edge_ramp, gather, scatter_add, tile_layout


def _coverage(layout):
    cover = torch.zeros(1, 1, layout.height, layout.width)
    scatter_add(cover, layout.index(), torch.ones(len(layout), 1, *layout.index().shape[1:]))
    return cover


@pytest.mark.parametrize("width,offset", [(64, 0), (64, 5), (72, 7), (16, 3), (10, 2)])
def test_circular_layout_covers_every_column_and_wraps(width, offset):
    layout = tile_layout(width, 16, (16, 16), (8, 8), circular=True, offset=(offset, 0))
    cover = _coverage(layout)
    assert cover.min() >= 1
    if width > 16:
        # some window crosses the wrap, so the two ends are denoised together
        assert any(w.x + w.width > width for w in layout.windows)
        assert len(layout) == -(-width // 8)


@pytest.mark.parametrize("length,window,stride,offset", [(64, 16, 8, 0), (64, 16, 8, 5), (60, 16, 8, 7), (40, 16, 16, 3),
                                                          (8, 16, 8, 1)])
def test_flat_axis_starts_cover_and_stay_inside(length, window, stride, offset):
    starts = axis_starts(length, window, stride, offset, circular=False)
    win = min(window, length)
    assert starts[0] == 0 and starts[-1] + win == length
    assert all(0 <= s <= length - win for s in starts)
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_stride_larger_than_window_is_refused():
    with pytest.raises(ValueError):
        axis_starts(64, 8, 16, 0, circular=True)


def test_edge_ramp_is_linear_positive_and_flat_inside():
    w = edge_ramp(16, 4, True, True)
    assert torch.all(w > 0)
    assert torch.allclose(w[:4], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.all(w[4:12] == 1)
    assert torch.allclose(w, w.flip(0))
    assert torch.all(edge_ramp(16, 4, False, True)[:12] == 1)


def test_flat_canvas_borders_are_not_tapered_but_interior_edges_are():
    layout = tile_layout(48, 16, (16, 16), (8, 8), circular=False)
    weights = layout.weights()
    first, middle = weights[0, 0], weights[2, 0]
    assert torch.all(first[:, 0] == 1)          # canvas border: nothing to blend with
    assert first[0, -1] < 0.5                   # interior edge: ramps down
    assert middle[0, 0] < 0.5 and middle[0, -1] < 0.5
    assert torch.all(first[0] == first[-1])     # as tall as the canvas: no vertical taper


def test_two_d_layout_tiles_in_y_when_the_canvas_is_taller_than_a_window():
    layout = tile_layout(64, 40, (16, 16), (8, 8), circular=True, offset=(3, 5))
    assert len({w.y for w in layout.windows}) > 1
    assert _coverage(layout).min() >= 1
    assert all(w.y + w.height <= 40 for w in layout.windows)


def test_gather_then_weighted_scatter_reconstructs_the_canvas():
    layout = tile_layout(40, 24, (16, 16), (8, 8), circular=True, offset=(6, 3))
    canvas = torch.randn(2, 5, 24, 40)
    index, weights = layout.index(), layout.weights()
    crops = gather(canvas, index)
    assert crops.shape == (len(layout) * 2, 5, 16, 16)
    acc = torch.zeros_like(canvas)
    wsum = torch.zeros(1, 1, 24, 40)
    scatter_add(acc, index, (crops.reshape(len(layout), 2, 5, 16, 16) * weights[:, None]).reshape(crops.shape))
    scatter_add(wsum, index, weights)
    assert torch.allclose(acc / wsum, canvas, atol=1e-6)


def test_scaled_index_matches_the_latent_windows():
    layout = tile_layout(20, 8, (8, 8), (4, 4), circular=True, offset=(3, 0))
    fine = torch.arange(20 * 4).float().reshape(1, 1, 1, 80).expand(1, 1, 32, 80).contiguous()
    coarse = torch.arange(20).float().reshape(1, 1, 1, 20).expand(1, 1, 8, 20).contiguous()
    # column c of the coarse canvas is columns 4c..4c+3 of the fine one
    fine_crops = gather(fine, layout.index(4))
    coarse_crops = gather(coarse, layout.index(1))
    assert fine_crops.shape[-2:] == (32, 32)
    assert torch.equal(fine_crops[:, :, ::4, ::4] // 4, coarse_crops)
    assert torch.equal(fine_crops[:, :, :, 1::4] // 4, fine_crops[:, :, :, ::4] // 4)
