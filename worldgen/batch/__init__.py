"""Batch world generation: a JOBS file in, one scene folder and GLB per job out, on any number of ranks.

- ``jobs``: JOBS files -> checked ``Job``s (names and seeds independent of the process count).
- ``shards``: which rank runs which job; where each world goes; whether it is already complete.
- ``run``: a rank's shard, each world staged and moved into place; failures recorded, never fatal.
- ``summary``: the plan (OUT/.batch/jobs.json) and the aggregate (OUT/.batch/summary.json).
- ``maker``: ``PanoWorldMaker``, which makes prompt jobs through ``worldgen.api`` and hands recipe
  jobs to ``worldgen.recipes.build_for_batch``.

A restart skips every job whose scene is valid and whose GLB is present, and regenerates the rest.
"""

from .jobs import (ALL_FIELDS, DERIVED_SEED_LIMIT, FORMATS, NAME_RE, PROMPT_FIELDS, RECIPE_FIELDS,  # noqa: F401
                   SEED_LIMIT, Job, JobDefaults, check_known_fields, derive_seed, job_from_fields, load_jobs,
                   parse_jobs, slug)
from .maker import RECIPE_HOOK, RECIPES_MODULE, PanoWorldMaker, check_job, recipe_hook  # noqa: F401
from .run import STAGING_SEP, JobResult, MakeWorld, RankReport, one_line, run_batch, run_shard  # noqa: F401
from .shards import BATCH_DIR, existing_world, glb_path, scene_path, shard  # noqa: F401
from .summary import PLAN_NAME, SUMMARY_NAME, summarize, write_plan  # noqa: F401
