"""Built-in modality plugins (importable as ``worldgen.plugins``); each registers through an entry point.

Sub-folders with their own ``pyproject.toml`` (such as ``worldgen-edges/``) are separate
distributions, examples of third-party plugins, and are not part of this package.
"""
