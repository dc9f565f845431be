"""What `worldgen doctor` checks: versions, devices, plugins, registered models, and per command
whether what it needs (weights above all) is present, with what to do when it is not.

Every check returns data (``Finding``s); the command only renders them. A check that fails in an
unexpected way becomes a finding itself: the doctor must work precisely when things are broken.
Nothing here loads weights (that can take minutes); files are checked for presence and, where it
is cheap, for a readable header.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import warnings
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"
STATUSES = (OK, INFO, WARN, FAIL)
SECTIONS = ("versions", "devices", "plugins", "models", "commands")

ADD_MODEL_FIX = ("worldgen models add rgbd_finetune_sd21b.zip --name rgbd "
                 "--base PATH/TO/stable-diffusion-2-1-base --default")
ADD_INPAINT_FIX = ("worldgen models add rgbd_inpaint_sd21b.zip --name rgbd-inpaint "
                   "--base PATH/TO/stable-diffusion-2-1-base, then pass --model rgbd-inpaint")
# Extras: what they enable, and how to get them.
OPTIONAL_PACKAGES = {
    "viser": "`worldgen view --web`",
    "tensorboard": "training logs in TensorBoard",
    "bitsandbytes": "8-bit AdamW for `worldgen train` on CUDA",
    "hypothesis": "the fuzz tests",
}
# Commands that need a JointNet model (default or --model) and cannot fall back to procedural.
JOINTNET_COMMANDS = ("refine", "outpaint", "depth", "paint", "edit")


@dataclass(frozen=True)
class Finding:
    section: str   # one of SECTIONS
    name: str      # what was checked: a package, a device, a plugin, a model, a command
    status: str    # ok / info / warn / fail
    detail: str    # what was found
    fix: str = ""  # what to do, when status is warn or fail

    def __post_init__(self) -> None:
        if self.section not in SECTIONS or self.status not in STATUSES:
            raise ValueError(f"bad finding {self.section}/{self.status}")


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    def section(self, name: str) -> list[Finding]:
        return [f for f in self.findings if f.section == name]

    def find(self, section: str, name: str) -> Optional[Finding]:
        return next((f for f in self.findings if f.section == section and f.name == name), None)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status in (WARN, FAIL)]

    def to_dict(self) -> dict:
        return {"findings": [asdict(f) for f in self.findings],
                "problems": len(self.problems), "failures": sum(f.status == FAIL for f in self.findings)}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---- versions ---------------------------------------------------------------------------------------

def check_versions() -> list[Finding]:
    """Python, worldgen, and every requirement of the worldgen distribution against its pin."""
    found = [Finding("versions", "python", OK, f"{platform.python_version()} ({sys.executable})"),
             Finding("versions", "platform", INFO, platform.platform())]
    try:
        found.append(Finding("versions", "worldgen", OK, metadata.version("worldgen")))
        requirements = metadata.requires("worldgen") or []
    except metadata.PackageNotFoundError:
        return found + [Finding("versions", "worldgen", FAIL, "the worldgen distribution is not installed",
                                "pip install -e . in the repository (or pip install worldgen)")]
    for raw in requirements:
        found.extend(_requirement(raw))
    listed = {_requirement_name(raw) for raw in requirements}
    for name, purpose in OPTIONAL_PACKAGES.items():
        if name not in listed:
            found.append(_optional(name, purpose))
    return found


def _requirement_name(raw: str) -> str:
    for stop in "<>=!~;[ (":
        raw = raw.split(stop, 1)[0]
    return raw.strip().lower()


def _requirement(raw: str) -> list[Finding]:
    try:
        from packaging.requirements import Requirement
    except ImportError:  # packaging is almost always there (pip, transformers); without it, no pin check
        Requirement = None
    name = _requirement_name(raw)
    extra = None
    if ";" in raw and "extra" in raw.split(";", 1)[1]:
        extra = raw.split("extra", 1)[1].strip(" =\"'")
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        if extra:
            return [Finding("versions", name, INFO, f"not installed (optional, extra [{extra}])",
                            f"pip install 'worldgen[{extra}]' to use it")]
        return [Finding("versions", name, FAIL, "not installed", f"pip install '{raw.split(';')[0].strip()}'")]
    if Requirement is not None:
        requirement = Requirement(raw)
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            return [Finding("versions", name, WARN if extra else FAIL,
                            f"{version} installed, worldgen needs {requirement.specifier}",
                            f"pip install -U '{name}{requirement.specifier}'")]
    return [Finding("versions", name, OK, version + (f" (extra [{extra}])" if extra else ""))]


def _optional(name: str, purpose: str) -> Finding:
    try:
        return Finding("versions", name, OK, f"{metadata.version(name)} (optional: {purpose})")
    except metadata.PackageNotFoundError:
        return Finding("versions", name, INFO, f"not installed (optional: {purpose})", f"pip install {name}")


# ---- devices ----------------------------------------------------------------------------------------

def check_devices() -> list[Finding]:
    try:
        import torch
    except Exception as exc:  # a broken torch install must be reported, not crash the doctor
        return [Finding("devices", "torch", FAIL, f"torch does not import ({_one_line(exc)})",
                        "reinstall torch: scripts/bootstrap.sh, or pip install --force-reinstall torch")]
    found = [Finding("devices", "cpu", OK, f"{os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads")]
    cuda_build = torch.version.cuda
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            detail = f"{props.name}, {props.total_memory / 2**30:.1f} GiB"
            try:
                free, _ = torch.cuda.mem_get_info(index)
                detail += f" ({free / 2**30:.1f} GiB free)"
            except Exception:  # some drivers/MIG slices do not report free memory
                pass
            bf16 = torch.cuda.is_bf16_supported() if index == torch.cuda.current_device() else None
            if bf16 is not None:
                detail += ", bfloat16 " + ("supported" if bf16 else "not supported (use --dtype float16)")
            found.append(Finding("devices", f"cuda:{index}", OK, detail))
    else:
        why = (f"this torch is built for CUDA {cuda_build}, but no GPU is visible (driver or CUDA_VISIBLE_DEVICES)"
               if cuda_build else "this torch is a CPU build")
        found.append(Finding("devices", "cuda", INFO, f"no CUDA GPU: {why}; JointNet runs on the CPU, slowly "
                                                      f"(the procedural backend does not need a GPU)",
                             "" if not cuda_build else "check nvidia-smi and CUDA_VISIBLE_DEVICES"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append(Finding("devices", "mps", OK, "Apple GPU available (--device mps)"))
    return found


# ---- plugins ----------------------------------------------------------------------------------------

def check_plugins(discover: Optional[Callable] = None) -> list[Finding]:
    """A fresh discovery (so its warnings can be seen): what loaded, what was skipped and why."""
    from .registry import ALLOWLIST_ENV, DEV_PLUGINS_ENV, PluginWarning, Registry

    discover = discover or Registry.discover
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        registry = discover()
    found = []
    allow = os.environ.get(ALLOWLIST_ENV)
    found.append(Finding("plugins", ALLOWLIST_ENV, INFO,
                         f"third-party plugins limited to: {allow}" if allow is not None
                         else "not set: every installed third-party plugin loads"))
    if os.environ.get(DEV_PLUGINS_ENV):
        found.append(Finding("plugins", DEV_PLUGINS_ENV, WARN, f"development plugins registered: "
                             f"{os.environ[DEV_PLUGINS_ENV]}", f"unset {DEV_PLUGINS_ENV} outside plugin development"))
    kinds = {"worldgen.backends": "backend", "worldgen.modalities": "modality", "worldgen.exporters": "exporter"}
    for plugin in registry.plugins():
        kind = kinds.get(plugin.group, plugin.group)
        found.append(Finding("plugins", f"{kind} {plugin.name}", OK, f"{plugin.distribution} {plugin.version}"))
    for warning in caught:
        if issubclass(warning.category, PluginWarning):
            found.append(Finding("plugins", "skipped", WARN, " ".join(str(warning.message).split()),
                                 "fix or uninstall the plugin's distribution, or leave it out of "
                                 f"{ALLOWLIST_ENV}"))
    return found


# ---- models -----------------------------------------------------------------------------------------

@dataclass
class ModelState:
    """What the model checks learned, for the command checks."""

    default: Optional[str] = None
    default_ok: bool = False
    usable: list[str] = field(default_factory=list)
    inpaint: list[str] = field(default_factory=list)
    index_error: Optional[str] = None


def check_models(store=None) -> tuple[list[Finding], ModelState]:
    state = ModelState()
    try:
        from .backends.jointnet.store import ModelStore
    except Exception as exc:
        return [Finding("models", "store", FAIL, f"the JointNet backend does not import ({_one_line(exc)})",
                        "reinstall worldgen (pip install -e .)")], state
    store = store or ModelStore()
    found = []
    try:
        entries = store.entries()
        state.default = store.default_name()
    except Exception as exc:  # a corrupt index: say so, with the store's own fix
        state.index_error = _one_line(exc)
        return [Finding("models", "store", FAIL, state.index_error, f"delete {store.index_path} and re-add "
                        f"your models with `worldgen models add`")], state
    found.append(Finding("models", "store", OK if entries else INFO, f"{store.root} ({len(entries)} registered"
                         + (f", default {state.default}" if state.default else ", no default") + ")",
                         "" if entries else ADD_MODEL_FIX))
    for entry in entries:
        finding, usable = _check_entry(entry, state.default)
        found.append(finding)
        if usable:
            state.usable.append(entry.name)
            if entry.inpaint:
                state.inpaint.append(entry.name)
    state.default_ok = state.default in state.usable
    if state.default and state.default not in {e.name for e in entries}:
        found.append(Finding("models", "default", FAIL, f"the default {state.default!r} is not registered",
                             "worldgen models default NAME (or --clear)"))
    return found, state


def _check_entry(entry, default: Optional[str]) -> tuple[Finding, bool]:
    from .backends.jointnet.loading import BRANCH_DIRS, weights_file

    name = f"{'*' if entry.name == default else ''}{entry.name}"
    kind = "inpaint" if entry.inpaint else "generate"
    where = entry.checkpoint_dir
    if not where.is_dir():
        return Finding("models", name, FAIL, f"checkpoint folder {where} is missing",
                       f"worldgen models remove {entry.name}, then add it again"), False
    for branch in BRANCH_DIRS:
        if not (where / branch / "config.json").is_file():
            return Finding("models", name, FAIL, f"{where / branch / 'config.json'} is missing",
                           f"re-download the checkpoint; worldgen models remove {entry.name} && worldgen models add ..."), False
        weights = weights_file(where / branch)
        problem = _weights_problem(weights) if weights else f"{where / branch} has no weights file"
        if problem:
            return Finding("models", name, FAIL, problem, "re-download the checkpoint and add it again"), False
    base = entry.base_dir
    if base is None or not _is_base(base):
        shown = entry.base or "none registered"
        return Finding("models", name, FAIL, f"{entry.modality}/{kind} at {where}; base model: {shown} (missing)",
                       f"pass --base PATH, or re-register: worldgen models remove {entry.name} && "
                       f"worldgen models add {where} --name {entry.name} --base PATH"), False
    return Finding("models", name, OK, f"{entry.modality}/{kind} at {where}; base {base}"), True


def _is_base(path: Path) -> bool:
    from .backends.jointnet.loading import is_base_dir

    return is_base_dir(path)


def _weights_problem(path: Path) -> Optional[str]:
    """A cheap look at a weights file: present, non-empty, and a readable header. No tensors load."""
    size = path.stat().st_size
    if size == 0:
        return f"{path} is empty"
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                if not list(handle.keys()):
                    return f"{path} holds no tensors"
        except Exception as exc:
            return f"{path} is not a readable safetensors file ({_one_line(exc)[:120]})"
    return None


# ---- commands ---------------------------------------------------------------------------------------

def check_commands(models: ModelState) -> list[Finding]:
    """Per command: can it run as typed, with what, and if not, what to do."""
    found = []
    if models.default_ok:
        found.append(Finding("commands", "pano", OK, f"uses the JointNet model {models.default!r}"))
    else:
        why = ("the default model is unusable (see models)" if models.default else "no default JointNet model")
        found.append(Finding("commands", "pano", INFO, f"{why}: uses the offline procedural backend (not diffusion)",
                             ADD_MODEL_FIX))
    needing = "/".join(JOINTNET_COMMANDS)
    if models.default_ok:
        found.append(Finding("commands", needing, OK, f"use {models.default!r} (or the scene's model, or --model)"))
    elif models.usable:
        found.append(Finding("commands", needing, WARN, f"no usable default model: pass --model "
                             f"({', '.join(models.usable)}) unless the scene records one",
                             f"worldgen models default {models.usable[0]}"))
    else:
        # A fresh install has no weights: a warning, not a failure (broken models fail above).
        found.append(Finding("commands", needing, WARN, "need a JointNet model; none is usable", ADD_MODEL_FIX))
    for command in ("outpaint", "edit"):
        if models.inpaint:
            found.append(Finding("commands", f"{command} --method masked", OK,
                                 f"inpainting model(s): {', '.join(models.inpaint)}"))
        else:
            found.append(Finding("commands", f"{command} --method masked", INFO,
                                 "no inpainting checkpoint: known content conditions by blending", ADD_INPAINT_FIX))
    for command in ("export", "history"):
        found.append(Finding("commands", command, OK, "needs no weights"))
    found.append(_module_command("view", "open3d", "the viewer window and --screenshot", "pip install 'worldgen[view]'"))
    found.append(_module_command("view --web", "viser", "the browser viewer", "pip install viser"))
    found.append(_module_command("batch", "accelerate", "one process per GPU", "pip install accelerate"))
    train = _module_command("train", "accelerate", "training", "pip install accelerate")
    if train.status == OK:
        train = Finding("commands", "train", OK, "needs --base (a diffusers Stable Diffusion folder) and --data; "
                        "modalities without files beside the images need their estimator's model "
                        "(e.g. --estimator-option model=Intel/dpt-hybrid-midas for depth)")
    found.append(train)
    return found


def _module_command(command: str, module: str, what: str, fix: str) -> Finding:
    if importlib.util.find_spec(module) is None:
        return Finding("commands", command, FAIL if command != "view --web" else INFO,
                       f"{module} is not installed, so {what} is unavailable", fix)
    return Finding("commands", command, OK, f"{module} available")


# ---- all of it --------------------------------------------------------------------------------------

def run_checks(store=None, discover: Optional[Callable] = None) -> DoctorReport:
    """Every check, in order. ``store`` (a ModelStore) and ``discover`` (a registry factory) are for tests."""
    report = DoctorReport()
    for section, check in (("versions", check_versions), ("devices", check_devices),
                           ("plugins", lambda: check_plugins(discover))):
        report.findings.extend(_guarded(section, check))
    models = ModelState()

    def model_check():
        nonlocal models
        found, models = check_models(store)
        return found

    report.findings.extend(_guarded("models", model_check))
    report.findings.extend(_guarded("commands", lambda: check_commands(models)))
    return report


def _guarded(section: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return check()
    except Exception as exc:  # the doctor reports its own failures as findings, it never crashes
        return [Finding(section, "check", FAIL, f"the {section} check failed: {type(exc).__name__}: {_one_line(exc)}",
                        "report this as a worldgen bug, with this line")]
