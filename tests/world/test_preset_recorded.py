"""The preset a scene records is the one that ran (issue 20): a backend loaded with one preset and a
request naming another record the request's, in the backend settings as in params (a server started
with --preset fast that makes a published world used to record "fast")."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def fast_loaded(tiny_checkpoint):
    from worldgen.api import WorldPipeline

    return WorldPipeline.from_pretrained(str(tiny_checkpoint), device="cpu", preset="fast")


def test_a_published_request_on_a_fast_loaded_backend_records_published(fast_loaded, tmp_path):
    assert fast_loaded.backend.settings()["preset"] == "fast"  # the loaded default
    world = fast_loaded("an island", width=64, height=16, seed=1, steps=2, preset="published")
    assert world.params["preset"] == "published"
    assert "preset" not in world.backend_settings  # published is the settings' default, left out
    record = world.save(tmp_path / "island").record()
    assert record["params"]["preset"] == "published" and "preset" not in record["backend"]["settings"]


def test_a_fast_request_records_fast_whatever_was_loaded(fast_loaded, tiny_checkpoint):
    from worldgen.api import WorldPipeline

    assert fast_loaded("an island", width=64, height=16, steps=2, preset="fast").backend_settings["preset"] == "fast"
    plain = WorldPipeline.from_pretrained(str(tiny_checkpoint), device="cpu")
    world = plain("an island", width=64, height=16, steps=2, preset="fast")
    assert "preset" not in plain.backend.settings()
    assert world.backend_settings["preset"] == world.params["preset"] == "fast"
