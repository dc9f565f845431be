"""The first request's text encoded on a thread while the JointNet branches load (issue 24): it
really overlaps the branch loading, the world is bit-identical to encoding afterwards, and a
different text falls back to the usual encoding."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from worldgen.api import WorldPipeline

REQUEST = dict(width=128, height=64, steps=1, seed=4, preset="fast")


@pytest.fixture
def tiny_model(tmp_path_factory):
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("early") / "m", seed=0, inpaint=False, sample_size=8)


def _world(model, prompt="a quiet harbour", **load):
    pipe = WorldPipeline.from_pretrained(str(model), device="cpu", **load)
    return pipe, pipe.generate(pipe.request(prompt, **REQUEST))


def test_the_text_is_encoded_while_the_branches_load(tiny_model, monkeypatch):
    from worldgen.backends.jointnet import early_text, loading

    spans = {"pair": [], "encode": []}  # (start, end, thread) of each call
    real_pair, real_hidden = loading.load_pair, early_text.text_hidden

    def timed(name, fn):
        def run(*args, **kwargs):
            started = time.perf_counter()
            time.sleep(0.2)  # each long enough for the other to start inside it
            try:
                return fn(*args, **kwargs)
            finally:
                spans[name].append((started, time.perf_counter(), threading.current_thread().name))
        return run

    monkeypatch.setattr(loading, "load_pair", timed("pair", real_pair))
    monkeypatch.setattr(early_text, "text_hidden", timed("encode", real_hidden))
    pipe, _ = _world(tiny_model)
    (pair_start, pair_end, pair_thread), = spans["pair"]
    encodes = spans["encode"]
    assert pair_thread == "MainThread"
    assert [thread for _, _, thread in encodes] == ["worldgen-early-text"] * 2  # prompt and negative, no more
    assert encodes[0][0] < pair_end and encodes[-1][1] > pair_start  # the two overlap in time
    assert pipe.backend.pipe._early_text is None  # taken by the first request, not kept


def test_the_world_is_the_same_as_encoding_afterwards(tiny_model):
    _, early = _world(tiny_model)
    pipe = WorldPipeline.from_pretrained(str(tiny_model), device="cpu")
    pipe.backend  # loaded before the request: nothing to encode early
    assert pipe.backend.pipe._early_text is None
    late = pipe.generate(pipe.request("a quiet harbour", **REQUEST))
    assert np.array_equal(early.image, late.image)
    assert np.array_equal(early.layer("depth"), late.layer("depth"))


def test_another_text_is_encoded_as_usual(tiny_model):
    from worldgen.backends.jointnet.spec import load
    from worldgen.backend import GenerateRequest

    backend = load({"model": str(tiny_model), "device": "cpu", "text_hint": ["a harbour", "", True]})
    hinted = backend.generate(GenerateRequest(prompt="a desert", **REQUEST))
    plain = load({"model": str(tiny_model), "device": "cpu"}).generate(GenerateRequest(prompt="a desert", **REQUEST))
    assert np.array_equal(hinted.image, plain.image)
