"""worldgen.jointnet"""
