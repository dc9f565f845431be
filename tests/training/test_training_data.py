"""Training data: finding records, modality files, the estimator cache, crops, resumable order."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image

from worldgen.errors import UserInputError
from worldgen.specs import ModalitySpec
from worldgen.training.data import (EstimateCache, ExampleReader, InfiniteShardedSampler, JointImageDataset,
                                    StreamingJointDataset, load_modality_file, make_loader, precompute_estimates)
from worldgen.training.records import iter_records, scan_records


def _encode(values):
    return np.repeat(np.clip(values, 0, 1) * 2 - 1, 3, axis=-1).astype(np.float32)


def _decode(image):
    return ((image.mean(-1, keepdims=True) + 1) / 2).astype(np.float32)


class CountingEstimator:
    """Mean brightness as a 1-channel map, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, rgb, scale=1.0):
        self.calls += 1
        return (rgb.mean(-1, keepdims=True) * scale).astype(np.float32)


def make_spec(estimator=None, name="shade"):
    return ModalitySpec(name=name, channels=1, value_range=(0.0, 1.0), meaning="test", geometry="none",
                        encode=_encode, decode=_decode, preview=lambda v: (np.repeat(v, 3, -1) * 255).astype(np.uint8),
                        estimator=estimator)


def make_reader(tmp_path, spec, resolution=16, min_crop=0.8, options=None):
    cache = EstimateCache(tmp_path / "cache", spec, tag="test==1", options=options)
    return ExampleReader(spec, resolution, min_crop, cache)


# ---- records ---------------------------------------------------------------------------------------
def test_sidecar_captions_and_modality_files_are_not_images(image_folder):
    np.save(image_folder / "img0.shade.npy", np.zeros((40, 56), np.float32))
    Image.fromarray(np.zeros((40, 56), np.uint8)).save(image_folder / "img1.depth.png")
    records = scan_records(image_folder, "shade", ("depth", "normal"))
    assert [r.image.name for r in records] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert records[2].caption == "a test picture number 2"


def test_manifest_gives_captions_and_modality_paths(tmp_path, make_images):
    folder = tmp_path / "data"
    make_images(folder / "sub", count=2, captions=False)
    np.save(folder / "sub" / "m0.npy", np.full((40, 56), 0.5, np.float32))
    lines = [{"file_name": "sub/img0.png", "text": "first", "shade": "sub/m0.npy"},
             {"file_name": "sub/img1.png", "caption": "second"}]
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    records = scan_records(folder, "shade")
    assert [(r.image.name, r.caption) for r in records] == [("img0.png", "first"), ("img1.png", "second")]
    assert records[0].modality == (folder / "sub" / "m0.npy").resolve() and records[1].modality is None


@pytest.mark.parametrize("rel", ["../outside.png", "/etc/passwd"])
def test_manifest_paths_cannot_escape_the_folder(tmp_path, rel):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": rel, "text": "x"}) + "\n")
    with pytest.raises(UserInputError, match="outside"):
        scan_records(folder, "shade")


def test_missing_caption_names_the_fix(tmp_path, make_images):
    folder = tmp_path / "data"
    make_images(folder, count=1, captions=False)
    with pytest.raises(UserInputError, match=r"img0\.txt"):
        scan_records(folder, "shade")


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no training images"):
        scan_records(tmp_path / "empty", "shade")


def test_streaming_records_are_lazy(tmp_path, make_images):
    folder = tmp_path / "data"
    make_images(folder, count=3)
    (folder / "img2.txt").unlink()  # a fault late in the folder ...
    records = iter_records(folder, "shade", ())
    first = next(records)  # ... does not stop the first record from being read
    assert first.caption.startswith("a test picture")


# ---- modality files --------------------------------------------------------------------------------
def test_sixteen_bit_png_keeps_its_precision(tmp_path):
    values = np.linspace(0, 1, 40 * 56, dtype=np.float32).reshape(40, 56)
    path = tmp_path / "m.png"
    Image.fromarray(np.round(values * 65535).astype(np.uint16)).save(path)  # PIL picks I;16
    loaded = load_modality_file(path, make_spec(), (40, 56))
    assert loaded.shape == (40, 56, 1)
    assert np.abs(loaded[..., 0] - values).max() < 1e-4  # an 8-bit detour would give ~2e-3


def test_modality_file_shape_is_checked(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((20, 28), np.float32))
    with pytest.raises(UserInputError, match="resize it"):
        load_modality_file(tmp_path / "m.npy", make_spec(), (40, 56))
    np.save(tmp_path / "m3.npy", np.zeros((40, 56, 3), np.float32))
    with pytest.raises(UserInputError, match=r"\(H, W, 1\)"):
        load_modality_file(tmp_path / "m3.npy", make_spec(), (40, 56))


def test_estimator_runs_once_per_image_and_is_cached(tmp_path, image_folder):
    estimator = CountingEstimator()
    spec = make_spec(estimator)
    reader = make_reader(tmp_path, spec, options={"scale": 0.5})
    records = scan_records(image_folder, "shade")
    assert precompute_estimates(records, reader) == 4
    assert estimator.calls == 4
    cached = sorted((tmp_path / "cache" / "shade").rglob("*.npy"))
    assert len(cached) == 4
    rgb = np.asarray(Image.open(records[0].image), np.float32) / 255
    expected = rgb.mean(-1, keepdims=True) * 0.5  # the estimator option reached the estimator
    path = reader.cache.path_for(records[0].image.read_bytes())
    assert np.allclose(np.load(path), expected, atol=1e-6)
    for record in records:  # reading again, in a new reader, uses the cache
        make_reader(tmp_path, spec, options={"scale": 0.5}).rgb_and_modality(record)
    assert estimator.calls == 4


def test_modality_file_wins_over_estimator(tmp_path, image_folder):
    estimator = CountingEstimator()
    np.save(image_folder / "img0.shade.npy", np.full((40, 56), 0.25, np.float32))
    reader = make_reader(tmp_path, make_spec(estimator))
    _, modality = reader.rgb_and_modality(scan_records(image_folder, "shade")[0])
    assert estimator.calls == 0 and np.allclose(modality, 0.25)


def test_no_file_and_no_estimator_names_the_fix(tmp_path, image_folder):
    reader = make_reader(tmp_path, make_spec(None))
    with pytest.raises(UserInputError, match=r"img0\.shade\.npy"):
        reader.rgb_and_modality(scan_records(image_folder, "shade")[0])


# ---- examples ----------------------------------------------------------------------------------------
def test_example_is_a_consistent_crop_of_rgb_and_modality(tmp_path, image_folder):
    # The modality is the image's own brightness, so the encoded crop must match the RGB crop.
    reader = make_reader(tmp_path, make_spec(CountingEstimator()), resolution=16, min_crop=0.5)
    record = scan_records(image_folder, "shade")[0]
    example = reader(record, np.random.default_rng(3))
    pixels, modality = example["pixel_values"], example["modality_values"]
    assert pixels.shape == (3, 16, 16) and modality.shape == (3, 16, 16)
    assert pixels.min() >= -1 and pixels.max() <= 1 and torch.isfinite(modality).all()
    brightness = (pixels.mean(0) + 1) / 2
    assert torch.corrcoef(torch.stack([brightness.flatten(), modality[0].flatten()]))[0, 1] > 0.9


def test_crops_depend_on_epoch_and_index_only(tmp_path, image_folder):
    reader = make_reader(tmp_path, make_spec(CountingEstimator()), min_crop=0.3)
    dataset = JointImageDataset(scan_records(image_folder, "shade"), reader, seed=1)
    a, b = dataset[5], dataset[5]
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert not torch.equal(dataset[1]["pixel_values"], dataset[5]["pixel_values"])  # same image, next epoch


# ---- order and resumption -----------------------------------------------------------------------------
def test_sampler_visits_every_record_each_epoch():
    keys = list(islice(iter(InfiniteShardedSampler(7, seed=3)), 21))
    for epoch in range(3):
        assert sorted(k - epoch * 7 for k in keys[epoch * 7:(epoch + 1) * 7]) == list(range(7))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sampler_resumes_at_the_exact_position(world):
    straight = list(islice(iter(InfiniteShardedSampler(5, seed=9)), 40))
    consumed = 13
    shards = [list(islice(iter(InfiniteShardedSampler(5, 9, start=consumed, rank=r, world=world)), 9))
              for r in range(world)]
    interleaved = [shards[i % world][i // world] for i in range(9)]
    assert interleaved == straight[consumed:consumed + 9]


def _stream_batches(dataset, workers, batch, count):
    loader = make_loader(dataset, batch, workers, seed=0)
    return [b["captions"] for b in islice(iter(loader), count)]


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_resume_continues_the_same_stream(tmp_path, workers, make_images):
    folder = tmp_path / "data"
    make_images(folder, count=6, size=(16, 16))
    reader = make_reader(tmp_path, make_spec(CountingEstimator()), resolution=8)

    def dataset(start):
        return StreamingJointDataset(lambda: iter_records(folder, "shade", ()), reader, seed=4, batch_size=2,
                                     buffer=3, start_batches=start)

    straight = _stream_batches(dataset(0), workers, 2, 8)
    resumed = _stream_batches(dataset(3), workers, 2, 5)
    assert resumed == straight[3:]
    seen = [c for batch in straight for c in batch]
    assert len(set(seen)) == 6  # every image appears


def test_streaming_shards_split_the_records(tmp_path, make_images):
    folder = tmp_path / "data"
    make_images(folder, count=6, size=(16, 16))
    reader = make_reader(tmp_path, make_spec(CountingEstimator()), resolution=8)
    per_rank = []
    for rank in range(2):
        ds = StreamingJointDataset(lambda: iter_records(folder, "shade", ()), reader, seed=4, batch_size=1,
                                   rank=rank, world=2)
        per_rank.append({e["caption"] for e in islice(iter(ds), 3)})
    assert per_rank[0].isdisjoint(per_rank[1]) and len(per_rank[0] | per_rank[1]) == 6
