"""worldgen.commands"""
