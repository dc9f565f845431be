"""Test-wide settings: never touch a hub, never touch the user's model store."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("WORLDGEN_HOME", tempfile.mkdtemp(prefix="worldgen-test-home-"))
os.environ.pop("WORLDGEN_PLUGINS", None)
os.environ.pop("WORLDGEN_DEV_PLUGINS", None)
