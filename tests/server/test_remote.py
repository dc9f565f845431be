"""`pano --server`'s library half (worldgen.server.remote): the job request for pano's arguments, what
is left to the server, and the refusals made before anything is sent."""

from __future__ import annotations

import pytest

from worldgen.errors import UserInputError
from worldgen.requests import WorldRequest
from worldgen.server.remote import job_request, make_world_on_server, refuse_server_side


def test_the_job_request_leaves_unset_values_to_the_server_and_passes_its_model():
    body = job_request("a fjord", width=256, height=64, span=180.0, guidance=5.0, negative_prompt="fog", seed=3,
                       regions=["0:90=a lighthouse"])
    assert "steps" not in body and "preset" not in body and "scheduler" not in body and "modality" not in body
    checked = WorldRequest.parse(body).to_generate_request("fast")  # the server's --preset fills it in
    assert (checked.width, checked.height, checked.preset, checked.steps, checked.seed) == (256, 64, "fast", 14, 3)
    assert checked.regions[0].prompt == "a lighthouse" and tuple(checked.regions[0].azimuth) == (0.0, 90.0)
    given = job_request("a fjord", width=256, height=64, span=360.0, guidance=7.5, negative_prompt="", seed=0,
                        steps=3, preset="published", scheduler="dpm++")
    assert (given["steps"], given["preset"], given["scheduler"]) == (3, "published", "dpm++")
    assert WorldRequest.parse(given).to_generate_request("fast").preset == "published"


def test_mask_regions_and_server_side_options_are_refused_before_sending(tmp_path):
    with pytest.raises(UserInputError, match="mask"):
        job_request("a fjord", width=256, height=64, span=360.0, guidance=7.5, negative_prompt="", seed=0,
                    regions=["mask.png=a boat"])
    with pytest.raises(UserInputError, match=r"^--window-batch is chosen when the server starts"):
        refuse_server_side({"prompt", "window_batch"})
    refuse_server_side({"prompt", "size", "preset"})
    taken = tmp_path / "world"
    (taken / "v1").mkdir(parents=True)
    with pytest.raises(UserInputError, match="not an empty folder"):  # checked before any request is made
        make_world_on_server("http://127.0.0.1:9", {"prompt": "x"}, taken, tmp_path / "world.glb")
