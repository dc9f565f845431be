"""Blender's own glTF importer opens the default GLB: the nodes arrive, the terrain's material shows
the panorama texture, and the camera stands at eye height above a ground at z = 0 (Blender is z up).

Blender is not part of the bootstrap (Debian's package is several hundred MB, the `bpy` wheel
similar): the test runs where `blender` is on PATH and skips with that reason elsewhere."""

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
    # Debian's Blender 3.4 importer still says np.bool, which its numpy 2 removed (a packaging
    # mismatch, whatever the file): give the alias back for this process only.
    if not hasattr(numpy, "bool") or numpy.__version__ >= "2":
        numpy.bool = bool
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=sys.argv[-2])
    out = {"objects": {}, "textured": []}
    for obj in bpy.data.objects:
        out["objects"][obj.name] = {"type": obj.type, "location": list(obj.matrix_world.translation)}
        if obj.type == "MESH":
            out["objects"][obj.name]["zmin"] = min((obj.matrix_world @ v.co).z for v in obj.data.vertices)
            for slot in obj.material_slots:
                if slot.material and slot.material.use_nodes and any(
                        n.type == "TEX_IMAGE" and n.image is not None for n in slot.material.node_tree.nodes):
                    out["textured"].append(obj.name)
    json.dump(out, open(sys.argv[-1], "w"))
""")


def test_blender_imports_the_default_glb(kit, tmp_path):
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("Blender is not installed (Debian: apt-get install blender; not in the bootstrap: "
                    "several hundred MB)")
    glb = tmp_path / "room.glb"
    glb.write_bytes(get_registry().exporter("glb").export(kit.room_snapshot(256, 64), {}))
    script, out = tmp_path / "probe.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    proc = subprocess.run([blender, "-b", "--factory-startup", "--python", str(script), "--", str(glb), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert out.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    seen = json.loads(out.read_text())
    names = {name.split(".")[0] for name in seen["objects"]}
    assert {"terrain", "sky", "ground", "camera"} <= names, names
    assert any(name.startswith("terrain") for name in seen["textured"])
    terrain = next(v for k, v in seen["objects"].items() if k.startswith("terrain"))
    assert terrain["zmin"] == pytest.approx(0.0, abs=1e-3)  # glTF y up -> Blender z up, ground at 0
    camera = next(v for k, v in seen["objects"].items() if v["type"] == "CAMERA")
    assert camera["location"][2] == pytest.approx(1.6, abs=1e-3)
