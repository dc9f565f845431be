"""worldgen: 3D worlds from text, built on JointNet RGB-D panoramas.

The public API (docs/api.md), imported on first use so that ``import worldgen`` and
``worldgen --help`` stay light::

    from worldgen import WorldPipeline
    world = WorldPipeline.from_pretrained("procedural")("a misty fjord at dawn", preset="fast")
"""

__version__ = "0.1.0"

# name -> (module, attribute): resolved by __getattr__ the first time each is used.
_LAZY = {
    "WorldPipeline": ("worldgen.api", "WorldPipeline"),
    "World": ("worldgen.world.result", "World"),
    "Scene": ("worldgen.scene.store", "Scene"),
    "JointNetPanoramaPipeline": ("worldgen.backends.jointnet.panorama_pipeline", "JointNetPanoramaPipeline"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'worldgen' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
