"""Issue 22 in Blender: the equirect export as a world (Environment Texture) and the GLB seen with
Blender's default clip end (1000 m) lose no sky. Runs where ``blender`` is on PATH, skips elsewhere
(Blender is not part of the bootstrap: several hundred MB)."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import pytest

from worldgen.registry import get_registry

SCRIPT = textwrap.dedent("""
    import bpy, json, sys
    import numpy
    if not hasattr(numpy, "bool") or numpy.__version__ >= "2":
        numpy.bool = bool  # Debian's Blender 3.4 importer still says np.bool
    glb, png, out = sys.argv[-3:]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    world = bpy.data.worlds.new("equirect")
    world.use_nodes = True
    env = world.node_tree.nodes.new("ShaderNodeTexEnvironment")
    env.image = bpy.data.images.load(png)
    world.node_tree.links.new(env.outputs["Color"], world.node_tree.nodes["Background"].inputs["Color"])
    bpy.ops.import_scene.gltf(filepath=glb)
    clip_end = bpy.data.cameras.new("default").clip_end  # a new camera's default, 1000 m
    eye = next(o for o in bpy.data.objects if o.type == "CAMERA").matrix_world.translation
    reach = max(((o.matrix_world @ v.co) - eye).length for o in bpy.data.objects if o.type == "MESH"
                for v in o.data.vertices)
    json.dump({"size": list(env.image.size), "clip_end": clip_end, "reach": reach}, open(out, "w"))
""")


def test_blender_reads_the_equirect_world_and_sees_all_the_sky(kit, tmp_path):
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("Blender is not installed (Debian: apt-get install blender; not in the bootstrap)")
    snapshot = kit.room_snapshot(256, 64)
    snapshot.geometry["far"] = 1000.0  # the sky used to sit at 1001.3 m
    (tmp_path / "room.glb").write_bytes(get_registry().exporter("glb").export(snapshot, {}))
    (tmp_path / "room.png").write_bytes(get_registry().exporter("equirect").export(snapshot, {}))
    script, out = tmp_path / "probe.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    proc = subprocess.run([blender, "-b", "--factory-startup", "--python", str(script), "--",
                           str(tmp_path / "room.glb"), str(tmp_path / "room.png"), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["size"] == [256, 128]
    assert result["reach"] < result["clip_end"] == pytest.approx(1000.0)
