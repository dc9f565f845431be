"""Reprojection between the views a world is seen in: the stored cylindrical band, the full
equirectangular sphere, perspective cameras and cube maps.

Every view is a grid of unit ray directions in the world frame of ``worldgen.geometry`` (y up,
the panorama's first column looking down -z, azimuth growing to the right). ``rays`` turns a view
into directions and directions back into pixel coordinates; ``sample`` reads any source at those
coordinates; ``cuts`` finds depth discontinuities and grows masks from them.
"""
