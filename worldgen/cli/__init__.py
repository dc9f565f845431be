"""worldgen.cli"""
