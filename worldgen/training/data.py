"""Training data: images with captions and, optionally, the modality for each.

A data folder holds images (``.png .jpg .jpeg .webp .bmp``, in sub-folders too) and, per image,
- a caption: a sidecar ``NAME.txt`` or a line of ``metadata.jsonl`` at the folder's root
  (``{"file_name": "a/b.jpg", "text": "..."}``; ``caption`` or ``prompt`` are accepted for ``text``);
- optionally the modality: a sidecar ``NAME.<modality>.npy`` ((H, W) or (H, W, C) float, in the
  plugin's value range) or ``NAME.<modality>.png`` (8/16-bit grey or RGB mapped onto the value
  range), or a manifest field named after the modality holding a relative path.
When the modality is missing, the plugin's estimator computes it from the RGB image and the
result is cached on disk by the image's content hash, so each image is estimated once.

Two ways to read the folder:
- map mode: the folder is indexed once (names and captions only) and an infinite, seeded,
  process-sharded sampler walks shuffled epochs;
- streaming mode: nothing is indexed: the manifest (or the directory walk) is read lazily,
  shuffled through a bounded buffer and sharded over processes and workers, for folders whose
  index would not fit in memory.
Either way a sample's random crop depends only on (seed, epoch, position), never on worker
timing, and a resumed run starts at an exact position of the stream: a run resumed at step k
sees the same samples an uninterrupted run sees after step k.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from ..scene.atomic import atomic_write_bytes
from ..errors import PluginError, UserInputError
from ..progress import ProgressCallback, report
from .records import Record


# -- reading one example -----------------------------------------------------------------------
def _decode_rgb(data: bytes, path: Path) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise UserInputError(f"{path} is not a readable image ({exc}); replace or remove it") from None


def find_modality_file(record: Record, modality: str) -> Optional[Path]:
    if record.modality is not None:
        if not record.modality.is_file():
            raise UserInputError(f"{record.modality} (the {modality} of {record.image.name}) does not exist; fix the manifest")
        return record.modality
    stem = record.image.with_suffix("")
    for suffix in (".npy", ".png"):
        candidate = Path(f"{stem}.{modality}{suffix}")
        if candidate.is_file():
            return candidate
    return None


def load_modality_file(path: Path, spec, shape: tuple[int, int]) -> np.ndarray:
    """A modality file as (H, W, channels) float32 in the plugin's value range."""
    lo, hi = spec.value_range
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserInputError(f"{path} is not a plain .npy array ({exc}); save it with numpy.save") from None
        array = np.asarray(array, dtype=np.float32)
    else:
        from PIL import Image

        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img, dtype=np.float32) / 65535.0
            else:
                mode = "L" if spec.channels == 1 else "RGB"
                array = np.asarray(img.convert(mode), dtype=np.float32) / 255.0
        array = array * (hi - lo) + lo
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != spec.channels:
        raise UserInputError(
            f"{path} has shape {array.shape}; the {spec.name} modality needs (H, W, {spec.channels})"
        )
    if array.shape[:2] != tuple(shape):
        raise UserInputError(f"{path} is {array.shape[1]}x{array.shape[0]} but its image is {shape[1]}x{shape[0]}; resize it to match")
    if not np.isfinite(array).all():
        raise UserInputError(f"{path} contains NaN or infinite values; fix or remove it")
    return array


class EstimateCache:
    """The estimator's output per image, on disk, keyed by the image's content and the plugin.

    ``tag`` names the plugin and its version, so upgrading a plugin does not reuse stale maps.
    Files are written atomically; a process that loses a race simply writes the same bytes.
    """

    def __init__(self, folder: Path, spec, tag: str, options: Optional[dict] = None) -> None:
        self.folder = Path(folder) / spec.name
        self.spec = spec
        self.tag = tag
        self.options = dict(options or {})

    def path_for(self, image_bytes: bytes) -> Path:
        digest = hashlib.sha256(self.tag.encode() + b"\0" + image_bytes).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, image_bytes: bytes, rgb: np.ndarray, source: Path) -> np.ndarray:
        path = self.path_for(image_bytes)
        if path.is_file():
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError):
                pass  # a damaged cache entry is recomputed and replaced
        if self.spec.estimator is None:
            raise UserInputError(
                f"{source} has no {self.spec.name} file and the {self.spec.name} plugin has no estimator; "
                f"add {source.with_suffix('')}.{self.spec.name}.npy"
            )
        array = np.asarray(self.spec.estimator(rgb, **self.options), dtype=np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.shape != (*rgb.shape[:2], self.spec.channels) or not np.isfinite(array).all():
            raise PluginError(
                f"the {self.spec.name} estimator returned {array.shape} (or non-finite values) for a "
                f"{rgb.shape[1]}x{rgb.shape[0]} image; it must return finite (H, W, {self.spec.channels})"
            )
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
        return array


def random_square(rng: np.random.Generator, height: int, width: int, min_crop: float) -> tuple[int, int, int]:
    """(top, left, side) of a random square covering at least ``min_crop`` of the short side."""
    short = min(height, width)
    side = max(1, int(round(short * rng.uniform(min_crop, 1.0))))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return top, left, side


class ExampleReader:
    """Turns a record and a random generator into one training example.

    The RGB image and its modality get the same random square crop, then are resized to the
    training size: RGB with antialiased bilinear filtering, the modality with nearest-neighbour
    (averaging depth across an object's edge would invent surfaces that are not there).
    No flips: mirroring would need plugin-specific care (a normal map's x must change sign).
    """

    def __init__(self, spec, resolution: int, min_crop: float, cache: EstimateCache) -> None:
        self.spec = spec
        self.resolution = resolution
        self.min_crop = min_crop
        self.cache = cache

    def rgb_and_modality(self, record: Record) -> tuple[np.ndarray, np.ndarray]:
        try:
            data = record.image.read_bytes()
        except OSError as exc:
            raise UserInputError(f"cannot read {record.image} ({exc.strerror}); check the data folder") from None
        rgb = _decode_rgb(data, record.image)
        path = find_modality_file(record, self.spec.name)
        if path is not None:
            modality = load_modality_file(path, self.spec, rgb.shape[:2])
        else:
            modality = self.cache.get(data, rgb, record.image)
        return rgb, modality

    def __call__(self, record: Record, rng: np.random.Generator) -> dict:
        rgb, modality = self.rgb_and_modality(record)
        top, left, side = random_square(rng, *rgb.shape[:2], self.min_crop)
        size = (self.resolution, self.resolution)
        rgb_t = torch.from_numpy(np.ascontiguousarray(rgb[top:top + side, left:left + side])).permute(2, 0, 1)[None]
        rgb_t = F.interpolate(rgb_t, size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        mod_t = torch.from_numpy(np.ascontiguousarray(modality[top:top + side, left:left + side])).permute(2, 0, 1)[None]
        mod_t = F.interpolate(mod_t, size=size, mode="nearest-exact")[0]
        encoded = np.asarray(self.spec.encode(mod_t.permute(1, 2, 0).numpy()), dtype=np.float32)
        if encoded.shape != (*size, 3) or not np.isfinite(encoded).all():
            raise PluginError(f"the {self.spec.name} plugin's encode returned {encoded.shape}; it must return finite (H, W, 3)")
        return {
            "pixel_values": (rgb_t.clamp(0.0, 1.0) * 2.0 - 1.0).contiguous(),
            "modality_values": torch.from_numpy(encoded).permute(2, 0, 1).contiguous(),
            "caption": record.caption,
        }


# -- map mode ----------------------------------------------------------------------------------
class JointImageDataset(Dataset):
    """Indexed records. A key is ``epoch * len(self) + index`` so the crop can depend on the epoch."""

    def __init__(self, records: list[Record], reader: ExampleReader, seed: int) -> None:
        self.records = records
        self.reader = reader
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int) -> dict:
        epoch, index = divmod(int(key), len(self.records))
        rng = np.random.default_rng([self.seed, epoch, index])
        return self.reader(self.records[index], rng)


class InfiniteShardedSampler(Sampler):
    """An endless stream of keys: each epoch is a fresh seeded permutation of the records.

    Process ``rank`` of ``world`` takes positions ``rank, rank + world, ...`` of the global
    stream, starting at ``start`` (samples already consumed by all processes together), so a
    resumed run picks up at the exact sample, even with a different number of processes.
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.start, self.rank, self.world = size, seed, start, rank, world

    def _permutation(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        position = self.start + self.rank
        epoch, perm = -1, []
        while True:
            want, offset = divmod(position, self.size)
            if want != epoch:
                epoch, perm = want, self._permutation(want)
            yield epoch * self.size + perm[offset]
            position += self.world

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return 2**62


# -- streaming mode ----------------------------------------------------------------------------
class StreamingJointDataset(IterableDataset):
    """Records read lazily and repeated forever, sharded over processes and loader workers.

    Shard ``rank * workers + worker`` takes every ``shards``-th record of the file order,
    shuffles it through a buffer of ``buffer`` records (seeded per epoch and shard), and skips
    what the previous run already consumed without decoding it. The loader hands out whole
    batches round-robin over workers, which is how the skip per worker is computed.
    """

    def __init__(self, records: Callable[[], Iterator[Record]], reader: ExampleReader, seed: int, batch_size: int,
                 buffer: int = 1000, rank: int = 0, world: int = 1, start_batches: int = 0) -> None:
        self.records = records
        self.reader = reader
        self.seed, self.batch_size, self.buffer = seed, batch_size, buffer
        self.rank, self.world, self.start_batches = rank, world, start_batches

    def _shuffled(self, shard: int, shards: int, epoch: int) -> Iterator[Record]:
        rng = np.random.default_rng([self.seed, epoch, shard])
        pool: list[Record] = []
        for number, record in enumerate(self.records()):
            if number % shards != shard:
                continue
            pool.append(record)
            if len(pool) >= self.buffer:
                yield pool.pop(int(rng.integers(len(pool))))
        while pool:
            yield pool.pop(int(rng.integers(len(pool))))

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # The loader takes batch i from worker i % workers, counting from 0 at every start; a
        # resumed run's first batch must come from the stream that would have made batch
        # ``start_batches``, so worker ids are rotated by the start.
        worker = (worker + self.start_batches) % workers
        shard, shards = self.rank * workers + worker, self.world * workers
        # Stream ``worker`` made batches worker, worker + workers, ... before the start.
        done_batches = max(0, math.ceil((self.start_batches - worker) / workers))
        skip = done_batches * self.batch_size
        position = 0
        epoch = 0
        while True:
            produced = False
            for record in self._shuffled(shard, shards, epoch):
                produced = True
                if position >= skip:
                    yield self.reader(record, np.random.default_rng([self.seed, epoch, shard, position]))
                position += 1
            if not produced:
                raise UserInputError(
                    f"data shard {shard} of {shards} is empty; add images or use fewer --num-workers/processes"
                )
            epoch += 1


# -- assembling a loader -----------------------------------------------------------------------
def collate(examples: list[dict]) -> dict:
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "modality_values": torch.stack([e["modality_values"] for e in examples]),
        "captions": [e["caption"] for e in examples],
    }


def precompute_estimates(records: list[Record], reader: ExampleReader, rank: int = 0, world: int = 1,
                         progress: Optional[ProgressCallback] = None) -> int:
    """Estimate (and cache) every missing modality file of this process's share; returns how many."""
    mine = [r for r in records[rank::world] if find_modality_file(r, reader.spec.name) is None]
    for done, record in enumerate(mine, 1):
        reader.rgb_and_modality(record)
        report(progress, "estimate", done, len(mine), record.image.name)
    return len(mine)


def make_loader(dataset, batch_size: int, num_workers: int, seed: int, sampler: Optional[Sampler] = None) -> DataLoader:
    # An explicit generator keeps the loader from drawing its worker seed from the global torch
    # RNG, which the training step owns (noise, timesteps, dropout) and checkpoints restore.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )
