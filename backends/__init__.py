"""Built-in backends (importable as ``worldgen.backends``); each registers through an entry point."""
