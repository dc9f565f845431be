"""A plugin author's tests: the shared contract, then what is particular to this modality."""

import numpy as np

from worldgen.plugins.contract import check_modality_spec
from worldgen.registry import Registry
from worldgen_edges import SPEC


def test_spec_keeps_the_modality_contract():
    errors = check_modality_spec(SPEC)
    assert errors["quantised_error"] <= 0.5 / 255 + 1e-6


def test_edges_mark_the_boundary_of_a_bright_square():
    image = np.zeros((16, 16, 3), np.float32)
    image[4:12, 4:12] = 1.0
    edges = SPEC.estimator(image)[..., 0]
    assert edges.shape == (16, 16) and edges.max() == 1.0
    assert edges[8, 8] == 0.0 and edges[0, 0] == 0.0  # flat inside and outside
    assert edges[8, 3:5].min() > 0.5 and edges[3:5, 8].min() > 0.5  # strong on both sides of the border


def test_wrap_makes_the_panorama_seam_like_any_other_column():
    # A 360-degree panorama has no first column: rolling it must roll its edges the same way.
    u = np.arange(48) / 48
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * u)
    panorama = np.tile(stripes[None, :, None], (8, 1, 3)).astype(np.float32)
    edges = SPEC.estimator(panorama, wrap=True)
    rolled = SPEC.estimator(np.roll(panorama, 17, axis=1), wrap=True)
    assert np.allclose(np.roll(edges, 17, axis=1), rolled, atol=1e-6)
    unwrapped = SPEC.estimator(np.roll(panorama, 17, axis=1))
    assert not np.allclose(np.roll(edges, 17, axis=1), unwrapped, atol=1e-2)  # the seam shows without wrap


def test_the_installed_package_is_discovered():
    registry = Registry.discover()
    [plugin] = [p for p in registry.plugins("worldgen.modalities") if p.name == "edges"]
    assert plugin.distribution == "worldgen-edges" and plugin.spec.summary() == "1 ch, none, estimator"
