"""Which rank runs which job, where each world goes in OUT, and whether it is already there.

Rank ``r`` of ``w`` takes jobs ``i`` with ``i % w == r`` and writes ``OUT/NAME/`` and ``OUT/NAME.glb``,
so a batch on two GPUs writes the same worlds as on one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..errors import SceneError, UserInputError
from .jobs import Job

BATCH_DIR = ".batch"


# Sharding --------------------------------------------------------------------------------------

def shard(jobs: Sequence[Job], rank: int, world: int) -> list[Job]:
    """The jobs rank ``rank`` of ``world`` runs: every world-th job counted in index order from the
    rank-th (for a whole JOBS file: those whose index i has i % world == rank). By index order, not
    list position, so the split does not depend on the order jobs are handed in."""
    if world < 1 or not 0 <= rank < world:
        raise UserInputError(f"rank {rank} of {world} processes is not a valid shard; rank runs from 0 to world-1")
    return sorted(jobs, key=lambda job: job.index)[rank::world]


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' (0 <= I < N, e.g. a Slurm array's task id and count) -> (I, N)."""
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise UserInputError(f"--shard {text!r} is not I/N with 0 <= I < N, e.g. --shard 0/4 "
                             f"(Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-3)")
    return i, n


# Output layout ---------------------------------------------------------------------------------

def scene_path(out: Path, job: Job) -> Path:
    return Path(out) / job.name


def glb_path(out: Path, job: Job) -> Path:
    return Path(out) / f"{job.name}.glb"


def _batch_dir(out: Path) -> Path:
    return Path(out) / BATCH_DIR


def _status_path(out: Path, job: Job) -> Path:
    return _batch_dir(out) / "status" / f"{job.name}.json"


def _rank_path(out: Path, rank: int) -> Path:
    return _batch_dir(out) / "ranks" / f"rank-{rank}.json"


def existing_world(out: Path, job: Job) -> tuple[str, Optional[str]]:
    """("complete", None), ("absent", None) or ("conflict", why) for the job's place in ``out``.

    Complete means: scene.json opens and validates, the GLB is there, and for a prompt job the
    scene's first version has the job's prompt, seed and size (so an edited JOBS file never
    silently keeps an old world under a reused name). Later versions (refinements) are allowed.
    """
    from ..scene.manifest import MANIFEST_NAME
    from ..scene.store import Scene

    scene_dir, glb = scene_path(out, job), glb_path(out, job)
    if not scene_dir.exists():
        return "absent", None
    if not (scene_dir / MANIFEST_NAME).is_file():
        return "conflict", f"{scene_dir} exists but holds no scene; delete it to let the batch write job {job.name}"
    try:
        scene = Scene.open(scene_dir)
    except SceneError as exc:
        return "conflict", f"{exc} (delete {scene_dir} to regenerate it)"
    if not glb.is_file():
        return "conflict", f"{glb} is missing beside the scene {scene_dir}; delete {scene_dir} to regenerate both"
    if job.prompt is not None:
        first = scene.versions[0]
        want = {"prompt": job.prompt.strip(), "seed": job.seed, "size": [job.width, job.height]}
        have = {"prompt": first.get("prompt"), "seed": first.get("seed"), "size": first.get("size")}
        differs = [k for k in want if want[k] != have[k]]
        if differs:
            return "conflict", (f"{scene_dir} holds another world ({', '.join(differs)} differ from job line "
                                f"{job.line}); rename the job or delete the folder")
    return "complete", None

