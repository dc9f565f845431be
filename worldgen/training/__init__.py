"""worldgen.training"""
