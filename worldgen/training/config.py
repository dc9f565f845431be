"""Everything one training run is told, in one dataclass.

The stage picks the method's defaults (JointNet paper, sec. 3.4 and 4.1); an explicit value
always wins. ``resolved()`` returns a copy with every stage default filled in, and that copy is
what the loop reads and what a checkpoint records, so a resumed run can be checked against it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import UserInputError

STAGES = ("1", "2", "inpaint", "branch")
MIXED_PRECISION = ("no", "fp16", "bf16")
OPTIMIZERS = ("auto", "adamw", "adamw8bit")
REPORT_TO = ("auto", "tensorboard", "none")

# Stage 1: the paper's recipe (RGB branch locked, 15% text dropout, lr 1e-4).
# Stage 2: the paper's optional second stage (everything unlocked, 50% text dropout, lr 1e-5).
# Inpaint: worldgen's choice, not a published number: it continues from a trained joint model
# like stage 2 (everything unlocked, lr 1e-5) because the RGB branch must learn to read its new
# masked-latent input, and keeps stage 1's 15% text dropout so prompts still steer the fill.
STAGE_DEFAULTS = {
    "1": {"lr": 1e-4, "text_dropout": 0.15, "train_rgb": False},
    "2": {"lr": 1e-5, "text_dropout": 0.5, "train_rgb": True},
    "inpaint": {"lr": 1e-5, "text_dropout": 0.15, "train_rgb": True},
    # Branch (`--from MODEL`): a new modality branch beside a trained model, trained like stage 1
    # (only the new branch and its connections move; see training/branch.py).
    "branch": {"lr": 1e-4, "text_dropout": 0.15, "train_rgb": False},
}


@dataclass
class TrainConfig:
    modality: str
    base: Path
    data: Path
    out: Path
    stage: str = "1"
    # Where the VAE, text encoder, tokenizer and scheduler live when ``base`` is a JointNet
    # checkpoint without them (the official zips hold only unet/ and jointnet/). None: in ``base``.
    components: Optional[Path] = None

    steps: int = 10_000
    resolution: int = 512
    batch_size: int = 4
    gradient_accumulation: int = 1
    lr: Optional[float] = None
    warmup_steps: int = 1000
    text_dropout: Optional[float] = None
    noise_offset: float = 0.05
    train_rgb: Optional[bool] = None
    max_grad_norm: float = 1.0
    weight_decay: float = 1e-2
    optimizer: str = "auto"

    mixed_precision: Optional[str] = None  # None: whatever `accelerate launch`/`accelerate config` says
    gradient_checkpointing: bool = False
    ema: bool = False
    ema_decay: float = 0.9999
    seed: int = 0

    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False

    validation_every: int = 500  # 0: no samples during training (one is still rendered at the end)
    validation_prompt: str = "a cozy living room with a large window, photograph"
    validation_seed: int = 0
    validation_steps: int = 25
    log_every: int = 10
    report_to: str = "auto"

    streaming: bool = False
    shuffle_buffer: int = 1000
    num_workers: int = 2
    min_crop: float = 0.8  # random square crops cover this fraction of the short side, or more
    cache_dir: Optional[Path] = None  # estimator outputs; None: OUT/estimates
    precompute: bool = True  # estimate missing modality files before the first step (map mode)
    estimator_options: dict = field(default_factory=dict)  # keyword options for the plugin's estimator

    def __post_init__(self) -> None:
        for name in ("base", "data", "out", "components", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))
        self.stage = str(self.stage)

    # ----------------------------------------------------------------------------------------
    def resolved(self) -> "TrainConfig":
        """A validated copy with the stage's defaults filled in."""
        self.validate()
        defaults = STAGE_DEFAULTS[self.stage]
        filled = {key: value for key, value in defaults.items() if getattr(self, key) is None}
        if self.cache_dir is None:
            filled["cache_dir"] = self.out / "estimates"
        return dataclasses.replace(self, **filled)

    def validate(self) -> None:
        def bad(message: str) -> UserInputError:
            return UserInputError(message)

        if self.stage not in STAGES:
            raise bad(f"--stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if self.steps < 1:
            raise bad("--steps must be at least 1")
        if self.resolution < 8 or self.resolution % 8:
            raise bad(f"--resolution {self.resolution} must be a positive multiple of 8, e.g. 512")
        if self.batch_size < 1 or self.gradient_accumulation < 1:
            raise bad("--batch-size and --gradient-accumulation must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise bad("--lr must be positive, e.g. 1e-4")
        if self.text_dropout is not None and not 0.0 <= self.text_dropout <= 1.0:
            raise bad("--text-dropout is a probability in [0, 1], e.g. 0.15")
        if self.warmup_steps < 0 or self.noise_offset < 0:
            raise bad("--warmup-steps and --noise-offset must not be negative")
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION:
            raise bad(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.report_to not in REPORT_TO:
            raise bad(f"--report-to must be one of {', '.join(REPORT_TO)}")
        if not 0.0 < self.min_crop <= 1.0:
            raise bad("--min-crop is a fraction in (0, 1], e.g. 0.8")
        if self.checkpoint_every < 0 or self.validation_every < 0 or self.log_every < 1:
            raise bad("--checkpoint-every and --validation-every must be >= 0, --log-every >= 1")
        if self.keep_checkpoints < 1:
            raise bad("--keep-checkpoints must be at least 1")
        if not 0.0 < self.ema_decay < 1.0:
            raise bad("--ema-decay must be in (0, 1), e.g. 0.9999")
        if self.num_workers < 0 or self.shuffle_buffer < 1:
            raise bad("--num-workers must be >= 0 and --shuffle-buffer >= 1")
        if self.stage == "branch" and self.train_rgb:
            raise bad("--from trains only the new branch; drop --train-rgb")
        if not self.base.is_dir():
            raise bad(f"--base {self.base} is not a folder; give a diffusers Stable Diffusion folder "
                      "(stage 1) or a JointNet checkpoint (stage 2, inpaint)")
        if not self.data.is_dir():
            raise bad(f"--data {self.data} is not a folder of images with captions")
        if self.components is not None and not self.components.is_dir():
            raise bad(f"--components {self.components} is not a diffusers Stable Diffusion folder")

    def to_json(self) -> dict:
        """Plain JSON values (paths as strings), for checkpoints and trackers."""
        out = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            out[item.name] = str(value) if isinstance(value, Path) else value
        return out

    @property
    def training_rgb(self) -> bool:
        return bool(self.train_rgb if self.train_rgb is not None else STAGE_DEFAULTS[self.stage]["train_rgb"])
