"""Point clouds and splats of every layer (issue 22): the background behind depth cuts
(``worldgen layers``) joins the band's pixels.

The layer is built as a world of its own (the band with the layer's colours and depth where its
mask is), at the band's scale exactly (the band's ``world_scale`` folded into the disparity scale
and shift, the ground fit off, so a refit cannot move it), and stacked under the band's grid: row
indices repeat, so everything computed per pixel and per row (points, normals, footprints) stays
right. Only masked, non-sky pixels of the layer are kept.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np


def with_layers(world, keep: np.ndarray, snapshot, opts: dict):
    """(world, keep) with the background layer's pixels stacked under the band's (unchanged without one)."""
    from worldgen.scene.snapshot import Snapshot

    from ._common import world_for

    layer = getattr(snapshot, "background", None)
    name = "depth"
    if layer is None or name not in snapshot.modalities or not layer.mask.any():
        return world, keep
    mask = layer.mask[:, :, None]
    behind = Snapshot(image=np.where(mask, layer.image, snapshot.image).astype(np.float32),
                      modalities={name: np.where(mask, layer.modality, snapshot.modalities[name]).astype(np.float32)},
                      projection=snapshot.projection, geometry=dict(snapshot.geometry))
    k = world.world_scale
    at_scale = dict(opts, fit_ground=False, disparity_scale=world.settings.disparity_scale / k,
                    disparity_shift=world.settings.disparity_shift / k, far=world.settings.far)
    back = world_for(behind, at_scale)
    grid_mask = layer.mask[np.ix_(world.rows, world.columns)] & ~back.sky
    stacked = replace(world, rows=np.concatenate([world.rows, world.rows]),
                      **{field: np.concatenate([getattr(world, field), getattr(back, field)])
                         for field in ("points", "distance", "sky", "normals", "colors")})
    return stacked, np.concatenate([keep, grid_mask])
