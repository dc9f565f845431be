"""Scene folders: versions and their manifest, the writer lock, snapshots, and the atomic file writes they rest on."""
