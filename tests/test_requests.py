"""worldgen.requests: the one request model, its generated JSON Schema, and GenerateRequest."""

from __future__ import annotations

import random

import pytest
from jsonschema import Draft202012Validator

from worldgen.errors import UserInputError
from worldgen.requests import WorldRequest, region_from_text, request_json_schema, size_from_text, size_staircase
from worldgen.validation import MAX_PIXELS, MAX_SIDE_PX


def test_defaults_and_preset_become_a_generate_request():
    request = WorldRequest.parse({"prompt": "  a misty fjord  "}).to_generate_request()
    assert (request.prompt, request.width, request.height, request.steps, request.preset) == \
        ("a misty fjord", 2048, 512, 50, "published")
    fast = WorldRequest.parse({"prompt": "a fjord", "preset": "fast"}).to_generate_request()
    assert fast.steps == 14 and fast.preset == "fast"
    server_default = WorldRequest.parse({"prompt": "a fjord"}).to_generate_request(default_preset="fast")
    assert server_default.steps == 14 and server_default.preset == "fast"
    explicit = WorldRequest.parse({"prompt": "a fjord", "preset": "fast", "steps": 3, "seed": 2**64 - 1,
                                   "size": [256, 64], "span": 180}).to_generate_request()
    assert (explicit.steps, explicit.seed, explicit.width, explicit.span_deg) == (3, 2**64 - 1, 256, 180.0)


def test_regions_from_text_and_objects():
    text = region_from_text("300:60@-10:30*2=a lighthouse")
    assert text == {"prompt": "a lighthouse", "azimuth": [300.0, 60.0], "elevation": [-10.0, 30.0], "weight": 2.0,
                    "feather": 8.0}
    request = WorldRequest.parse({"prompt": "a coast", "regions": [text, {"prompt": "a glacier",
                                                                          "azimuth": [180, 250],
                                                                          "elevation": [40, 0]}]})
    regions = request.to_generate_request().regions
    assert regions[0].azimuth == (300.0, 60.0) and regions[0].weight == 2.0
    assert regions[1].elevation == (0.0, 40.0)  # either order, as the schema says
    with pytest.raises(UserInputError, match="mask regions are not accepted"):
        region_from_text("/etc/hostname=a boat")


def test_sizes_from_cli_text():
    assert size_from_text("2048x512") == [2048, 512]
    request = WorldRequest.from_text_fields({"prompt": "a bay", "size": "256x64", "regions": ["0:90=a pier"]})
    assert request.size == (256, 64) and request.regions[0].azimuth == [0.0, 90.0]
    with pytest.raises(UserInputError, match="multiple of 8"):
        WorldRequest.from_text_fields({"prompt": "a bay", "size": "250x64"})
    with pytest.raises(UserInputError, match="WIDTHxHEIGHT"):
        size_from_text("big")


def test_the_size_staircase_is_exactly_the_pixel_limit():
    corners = size_staircase()
    validator = Draft202012Validator(request_json_schema())
    rng = random.Random(0)
    sides = [8, 1024, 1032, 4096, 4104, 8192, 16384] + [8 * rng.randint(1, MAX_SIDE_PX // 8) for _ in range(100)]
    for _ in range(120):
        w, h = rng.choice(sides), rng.choice(sides)
        fits = w * h <= MAX_PIXELS
        assert validator.is_valid({"prompt": "x", "size": [w, h]}) == fits, (w, h)
        assert any(w <= cw and h <= ch for cw, ch in corners) == fits, (w, h)
        try:
            WorldRequest.parse({"prompt": "x", "size": [w, h]})
            accepted = True
        except UserInputError:
            accepted = False
        assert accepted == fits, (w, h)


@pytest.mark.parametrize("body,needle", [
    ({"prompt": "x", "name": "world\n"}, "name"), ({"prompt": "x", "modality": "depth\n"}, "modality"),
    ({"prompt": "x", "guidance": float("nan")}, "NaN"), ({"prompt": "x", "span": 0.5}, "span"),
    ({"prompt": "x", "sise": [8, 8]}, "did you mean 'size'"), ({"size": [8, 8]}, "prompt"),
])
def test_bad_requests_are_one_line_errors(body, needle):
    with pytest.raises(UserInputError, match="request: ") as caught:
        WorldRequest.parse(body)
    assert needle in str(caught.value) and "\n" not in str(caught.value)
