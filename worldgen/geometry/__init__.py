"""Geometry: the cylindrical projection, depth -> points and normals, prompt regions and object placement."""
