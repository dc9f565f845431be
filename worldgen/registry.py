"""Plugin discovery through entry points.

Every backend, modality and exporter, built-in or third-party, is a spec object (``worldgen.specs``)
published under one of three entry-point groups. Discovery validates each one and skips, with a
``PluginWarning`` naming the distribution, anything malformed or duplicated: a broken plugin must
never stop worldgen from starting.

Environment:
- ``WORLDGEN_PLUGINS``: comma list of plugin or distribution names; when set, third-party plugins
  not named there are not loaded (worldgen's own always are: the allowlist is about foreign code).
- ``WORLDGEN_DEV_PLUGINS``: comma list of ``module:attribute`` specs to register without
  installing a package (for plugin authors while developing).
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterable, Optional

from .errors import PluginError
from .specs import GROUP_BACKENDS, GROUP_EXPORTERS, GROUP_MODALITIES, SPEC_TYPES

BUILTIN_DISTRIBUTION = "worldgen"
ALLOWLIST_ENV = "WORLDGEN_PLUGINS"
DEV_PLUGINS_ENV = "WORLDGEN_DEV_PLUGINS"


GROUP_KINDS = {GROUP_BACKENDS: "backend", GROUP_MODALITIES: "modality", GROUP_EXPORTERS: "exporter"}


class PluginWarning(UserWarning):
    """A plugin was skipped; the message says which, from where, and why."""


@dataclass(frozen=True)
class LoadedPlugin:
    group: str
    name: str
    spec: Any
    distribution: str
    version: str


def _allowlist() -> Optional[set[str]]:
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None:
        return None
    return {item.strip().lower() for item in raw.split(",") if item.strip()}


def _dev_entry_points() -> list[tuple[str, str, Any]]:
    """Yield (name, source, loader) triples for ``WORLDGEN_DEV_PLUGINS``."""
    raw = os.environ.get(DEV_PLUGINS_ENV, "")
    found = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        module_name, _, attr = item.partition(":")

        def load(module_name=module_name, attr=attr):
            obj = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
            return obj

        found.append((item, "dev", load))
    return found


class Registry:
    """The loaded plugins, by group and name."""

    def __init__(self) -> None:
        self._plugins: dict[str, dict[str, LoadedPlugin]] = {group: {} for group in SPEC_TYPES}

    @classmethod
    def discover(cls, entry_points: Optional[Iterable[Any]] = None) -> "Registry":
        """Load every plugin. ``entry_points`` lets tests pass fakes (objects with ``group``,
        ``name``, ``load()`` and optionally ``dist``) instead of installed packages."""
        registry = cls()
        if entry_points is None:
            entry_points = [ep for group in SPEC_TYPES for ep in metadata.entry_points(group=group)]
        allow = _allowlist()
        # Built-ins first, so a third-party plugin cannot shadow a built-in name.
        ordered = sorted(entry_points, key=lambda ep: _dist_name(ep) != BUILTIN_DISTRIBUTION)
        for ep in ordered:
            dist, version = _dist_name(ep), _dist_version(ep)
            if allow is not None and dist != BUILTIN_DISTRIBUTION and not {ep.name.lower(), dist.lower()} & allow:
                continue
            registry._add(ep.group, ep.name, ep.load, dist, version)
        for name, source, load in _dev_entry_points():
            registry._add(None, name, load, source, "dev")
        return registry

    def _add(self, group: Optional[str], ep_name: str, load, dist: str, version: str) -> None:
        where = f"plugin {ep_name!r} from {dist}"
        try:
            spec = load()
        except Exception as exc:  # any import-time failure of foreign code is a skipped plugin
            warnings.warn(f"{where} failed to import and was skipped: {exc}", PluginWarning, stacklevel=3)
            return
        if group is None:  # dev plugins: the spec's type says the group
            group = next((g for g, t in SPEC_TYPES.items() if isinstance(spec, t)), None)
        expected = SPEC_TYPES.get(group)
        if expected is None or not isinstance(spec, expected):
            want = expected.__name__ if expected else "a worldgen spec"
            warnings.warn(
                f"{where} was skipped: it is a {type(spec).__name__}, not {want} (group {group})",
                PluginWarning,
                stacklevel=3,
            )
            return
        try:
            spec.validate()
        except Exception as exc:
            warnings.warn(f"{where} was skipped: {exc}", PluginWarning, stacklevel=3)
            return
        existing = self._plugins[group].get(spec.name)
        if existing is not None:
            warnings.warn(
                f"{where} was skipped: {group} name {spec.name!r} is already provided by {existing.distribution}",
                PluginWarning,
                stacklevel=3,
            )
            return
        self._plugins[group][spec.name] = LoadedPlugin(group, spec.name, spec, dist, version)

    # Lookups -------------------------------------------------------------------------------
    def plugins(self, group: Optional[str] = None) -> list[LoadedPlugin]:
        groups = [group] if group else list(self._plugins)
        return [p for g in groups for _, p in sorted(self._plugins[g].items())]

    def names(self, group: str) -> list[str]:
        return sorted(self._plugins[group])

    def get(self, group: str, name: str) -> Any:
        try:
            return self._plugins[group][name].spec
        except KeyError:
            kind = GROUP_KINDS.get(group, "plugin")
            known = ", ".join(self.names(group)) or "none"
            raise PluginError(
                f"unknown {kind} {name!r}; installed: {known} (see `worldgen plugins`)"
            ) from None

    def backend(self, name: str):
        return self.get(GROUP_BACKENDS, name)

    def modality(self, name: str):
        return self.get(GROUP_MODALITIES, name)

    def exporter(self, name: str):
        return self.get(GROUP_EXPORTERS, name)


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "unknown"


def _dist_version(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "version", None) or "?"


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, discovered once."""
    return Registry.discover()
