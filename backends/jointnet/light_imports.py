"""Import only the diffusers modules JointNet uses (issue 24).

Some diffusers package ``__init__`` files import every model of their kind at once: importing
``UNet2DConditionModel`` runs ``diffusers.models.unets``' init, whose unet_2d_blocks import runs
``diffusers.models.transformers``' init, which imports every transformer model diffusers has (and,
through them, its LoRA loaders, scipy.stats and transformers' integrations); likewise every
autoencoder for ``AutoencoderKL``. Measured seconds of a cold `worldgen pano` went there.

``defer_package_inits`` puts those packages into ``sys.modules`` as ``DeferredPackage``: the
package's submodules import as usual (its ``__path__`` is the real one), and its own ``__init__``
runs the first time anyone asks the package itself for a name it lacks, so code that uses a
package-level name still gets it. Nothing else changes; a diffusers without these packages (or one
already imported) is left alone.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types

DEFERRED = ("diffusers.models.unets", "diffusers.models.transformers", "diffusers.models.autoencoders")


class DeferredPackage(types.ModuleType):
    """A package whose ``__init__`` runs on the first missing attribute, not at import."""

    def __getattr__(self, name: str):
        if name.startswith("__") or self.__dict__.get("_worldgen_init_done"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        with _LOCK:
            if not self.__dict__.get("_worldgen_init_done"):
                self.__dict__["_worldgen_init_done"] = True
                self.__spec__.loader.exec_module(self)  # the package's own __init__, run by its loader
        return getattr(self, name)


_LOCK = threading.RLock()


def defer_package_inits(names=DEFERRED) -> list[str]:
    """Defer the ``__init__`` of each package in ``names`` that is not imported yet; returns those deferred."""
    deferred = []
    for name in names:
        parent, _, child = name.rpartition(".")
        if name in sys.modules:
            continue
        try:
            importlib.import_module(parent)  # the parents import normally (diffusers' own lazy modules)
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or spec.submodule_search_locations is None or spec.loader is None:
            continue
        module = DeferredPackage(name)
        module.__spec__, module.__path__ = spec, list(spec.submodule_search_locations)
        module.__file__, module.__package__, module.__loader__ = spec.origin, name, spec.loader
        sys.modules[name] = module
        deferred.append(name)
    return deferred
