"""Orchestration shared by every front end (the Python API, the CLI, batch, recipes, the server).

One module per decision, so each is made in one place:

- ``backends``: which backend makes a world (``--backend auto``), which model a scene task loads,
  and who paints a placed object.
- ``outputs``: where results go (the GLB and scene folder of a new world, a task's GLB refresh).
- ``versions``: a task's result as a new scene version (never overwriting its source) + GLB refresh.
- ``inputs``: outside files a task reads (modality arrays, masks).
- ``advice``: any exception -> the one line a person reads (CLI and server alike).
- ``result``: ``World``, what every operation returns.
- ``generate``: text -> a saved scene + its export (what `pano` and `batch` share).

Nothing here prints or exits; front ends decide how to show notes and errors.
"""
