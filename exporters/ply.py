"""Coloured point cloud (binary PLY) of a panorama world: one point per pixel (or per ``step``-th
pixel), with normals, y up, metres, the camera at the origin. ``voxel_size`` (metres) merges the
points in each voxel (open3d's voxel downsampling averages positions, colours and normals). Sky
pixels become points on the distant sky cylinder (``sky=false`` leaves them out)."""

from __future__ import annotations

import numpy as np

from worldgen.errors import UserInputError
from worldgen.specs import ExporterSpec

from ._common import choice, encode_ply_vertices, option_names, read_options, world_for
from ._layer_points import with_layers

DEFAULTS = {
    "step": 1,
    "voxel_size": 0.0,  # metres; 0 keeps every point
    "sky": True,
    "normals": True,
    "origin": "camera",  # or "ground": ground at y = 0
}


def world_points(snapshot, opts: dict, exporter: str = "ply"):
    """(points, colours, normals, world) of the kept pixels, flattened, float32, ``origin`` applied."""
    origin = choice(opts, "origin", ("camera", "ground"), exporter)
    world = world_for(snapshot, opts)
    keep = np.ones(world.sky.shape, dtype=bool) if opts["sky"] else ~world.sky
    world, keep = with_layers(world, keep, snapshot, opts)  # issue 22: the background layer too
    points = world.points[keep]
    if origin == "ground":
        points[:, 1] += world.ground_height or world.settings.eye_height
    return points, np.asarray(world.colors[keep], dtype=np.float32), world.normals[keep], world


def layer_columns(snapshot, world, opts: dict) -> list[tuple[str, np.ndarray]]:
    """One float property per channel of each layer without geometry (e.g. ``edges``), per kept point
    in the order of ``world_points``: the world's other layers travel with its points."""
    from .variants import extra_layer_names

    step = int(opts["step"])
    keep = np.ones(world.sky.shape, dtype=bool) if opts["sky"] else ~world.sky
    columns = []
    for name in extra_layer_names(snapshot):
        layer = np.asarray(snapshot.modalities[name], dtype=np.float32)[::step, ::step][keep]
        channels = layer.shape[-1]
        columns += [(name if channels == 1 else f"{name}_{c}", np.ascontiguousarray(layer[:, c]))
                    for c in range(channels)]
    return columns


def voxel_downsample(points, colors, normals, voxel: float):
    """open3d voxel downsampling; returns float32 arrays (normals renormalised)."""
    try:
        import open3d as o3d
    except ImportError:
        from worldgen.errors import UserInputError

        raise UserInputError("-O voxel_size needs open3d: pip install 'worldgen[view]' (or leave voxel_size out)") from None

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(colors.astype(np.float64))
    cloud.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    down = cloud.voxel_down_sample(voxel)
    n = np.asarray(down.normals, dtype=np.float32)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return (np.asarray(down.points, dtype=np.float32), np.asarray(down.colors, dtype=np.float32), n)


def export_ply(snapshot, options: dict) -> bytes:
    opts = read_options(options, DEFAULTS, "ply")
    if opts["voxel_size"] < 0:
        raise UserInputError("ply option voxel_size must be >= 0 metres (0 keeps every point)")
    points, colors, normals, world = world_points(snapshot, opts)
    if opts["voxel_size"] > 0 and len(points):
        points, colors, normals = voxel_downsample(points, colors, normals, opts["voxel_size"])
    rgb = np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)
    columns = [("x", points[:, 0]), ("y", points[:, 1]), ("z", points[:, 2])]
    if opts["normals"]:
        columns += [("nx", normals[:, 0]), ("ny", normals[:, 1]), ("nz", normals[:, 2])]
    columns += [("red", rgb[:, 0]), ("green", rgb[:, 1]), ("blue", rgb[:, 2])]
    if opts["voxel_size"] == 0:  # merged voxels have no one pixel to take a layer's value from
        columns += layer_columns(snapshot, world, opts)
    meta = world.metadata()
    comments = ("worldgen point cloud: y up, metres, camera at the origin" if opts["origin"] == "camera"
                else "worldgen point cloud: y up, metres, ground at y = 0",
                f"world_scale {meta['world_scale']:.6g} far {world.settings.far:.6g}")
    return encode_ply_vertices([(n, np.ascontiguousarray(v)) for n, v in columns], comments)


SPEC = ExporterSpec(
    name="ply",
    extension=".ply",
    description="coloured point cloud with normals (binary PLY), optional voxel downsampling",
    export=export_ply,
    options=option_names(DEFAULTS),
)
