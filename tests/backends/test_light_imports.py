"""Only the diffusers modules JointNet uses are imported (issue 24): a fresh process loading a tiny
JointNet through the plugin never imports diffusers' other transformer models or autoencoders, a
deferred package still answers package-level names, and the world is the same bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

REQUEST = dict(prompt="a lake", width=128, height=64, steps=1, seed=2, preset="fast")

CHILD = """
import json, sys
import numpy as np
if sys.argv[4] == "full":  # every package's init imported first: nothing left to defer
    import diffusers.models.unets, diffusers.models.transformers, diffusers.models.autoencoders
from worldgen.backend import GenerateRequest
from worldgen.backends.jointnet.spec import load
world = load({"model": sys.argv[1], "device": "cpu"}).generate(GenerateRequest(**json.loads(sys.argv[2])))
np.save(sys.argv[3], world.image)
heavy = [m for m in sys.modules if m.startswith(("diffusers.models.transformers.", "diffusers.models.autoencoders."))]
print(json.dumps(sorted(heavy)))
import diffusers.models.transformers as t
print(json.dumps([type(t).__name__, hasattr(t, "Transformer2DModel")]))
"""


def test_a_fresh_process_imports_only_what_jointnet_uses(tmp_path):
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    model = write_tiny_checkpoint(tmp_path / "tiny", seed=0, inpaint=False, sample_size=8)
    done = {mode: _child(tmp_path, model, mode) for mode in ("light", "full")}
    heavy_line, package_line = done["light"].stdout.strip().splitlines()[-2:]
    heavy = json.loads(heavy_line)
    # What the UNet's blocks and the KL autoencoder need, and none of the other models.
    assert heavy and all(name.rsplit(".", 1)[1] in {"transformer_2d", "dual_transformer_2d", "autoencoder_kl", "vae"}
                         for name in heavy), heavy
    assert json.loads(package_line) == ["DeferredPackage", True]  # the package's own names still come
    assert json.loads(done["full"].stdout.strip().splitlines()[-1])[0] == "module"
    assert np.array_equal(np.load(tmp_path / "light.npy"), np.load(tmp_path / "full.npy"))


def _child(tmp_path, model, mode: str):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), json.dumps(REQUEST), str(tmp_path / f"{mode}.npy"),
                           mode], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done
