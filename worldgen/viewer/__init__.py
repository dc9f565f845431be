"""Viewers: the open3d window and screenshots, the web view and its colour checks."""
