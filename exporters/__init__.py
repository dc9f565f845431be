"""Built-in exporters (importable as ``worldgen.exporters``): pure functions from a scene snapshot to bytes."""
