"""worldgen: 3D worlds from text, built on JointNet RGB-D panoramas."""

__version__ = "0.1.0"
