"""Scheduler choice by short name; every scheduler is built from the base model's scheduler config."""

from __future__ import annotations

from typing import Any, Optional

from worldgen.errors import UserInputError

# name -> (diffusers class name, config overrides)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
}
ALIASES = {"dpmsolver++": "dpm++", "dpm-solver++": "dpm++", "dpm": "dpm++", "uni-pc": "unipc",
           "euler_a": "euler-a", "euler-ancestral": "euler-a"}
DEFAULT_SCHEDULER = "ddim"


def scheduler_class(class_name: str):
    """A diffusers scheduler class by name; anything that is not a scheduler is refused."""
    import diffusers
    from diffusers import SchedulerMixin

    cls = getattr(diffusers, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise UserInputError(f"{class_name!r} is not a diffusers scheduler; use one of {', '.join(SCHEDULERS)}")
    return cls


def make_scheduler(name: Optional[str], base_config: dict):
    """Scheduler ``name`` (e.g. "ddim", "dpm++", "unipc") configured from ``base_config``.

    None keeps the base model's own scheduler class. The beta schedule and prediction type always
    come from the base config, so swapping schedulers never changes what the UNet was trained for.
    """
    config = {k: v for k, v in dict(base_config).items()}
    if name is None:
        return scheduler_class(config.get("_class_name", "DDIMScheduler")).from_config(config)
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SCHEDULERS:
        raise UserInputError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)}")
    class_name, overrides = SCHEDULERS[key]
    return scheduler_class(class_name).from_config(config, **overrides)


def _runnable(scheduler, steps: int) -> bool:
    """True when ``scheduler`` set up for ``steps`` runs only timesteps the model was trained on.
    Beyond that, diffusers indexes past its noise tables: an IndexError (DDIM, DDPM, PNDM), an
    AssertionError (UniPC), or a timestep 1000 whose sigma is NaN (DPM-Solver++) - a NaN world that
    looked like a precision fault."""
    import copy

    trial = copy.deepcopy(scheduler)
    try:
        trial.set_timesteps(steps)
    except Exception:  # the refusal above names the fix; what diffusers raised says nothing useful
        return False
    timesteps = trial.timesteps
    trained = int(trial.config.get("num_train_timesteps", 1000))
    # DPM-Solver++ at 1000 steps collapses to one repeated timestep: as few distinct ones as asked
    # for is the least a schedule of ``steps`` steps has (PNDM repeats some on purpose, on top).
    distinct = len(set(timesteps.tolist())) if len(timesteps) else 0
    return distinct >= steps and 0 <= int(timesteps.min()) and int(timesteps.max()) < trained


def check_steps(scheduler, steps: int, label: str = "--steps") -> int:
    """``steps`` if ``scheduler`` can run that many, else a UserInputError naming the most it can
    (checked in milliseconds on the scheduler's own tables, before any sampling)."""
    scheduler = getattr(scheduler, "scheduler", scheduler)  # a wrapper (IF's learned variance): its solver
    if _runnable(scheduler, steps):
        return steps
    most = next((n for n in range(min(steps, 10_000) - 1, 0, -1) if _runnable(scheduler, n)), None)
    name = type(scheduler).__name__
    trained = scheduler.config.get("num_train_timesteps", "?")
    if most is None:
        raise UserInputError(f"{label} {steps}: the {name} of this model cannot be set up for any step count; "
                             f"check the base model's scheduler_config.json")
    raise UserInputError(f"{label} {steps} is more than the {name} of this model can run (it was trained on "
                         f"{trained} timesteps); use {label} {most} or fewer")
