"""worldgen.sampler"""
