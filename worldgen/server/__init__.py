"""`worldgen serve`: a local HTTP API that keeps models loaded and makes worlds from a queue.

- ``schema``: the job request (its checks are the CLI's and batch's own, see ``parse_job``) and the
  JSON Schema served at ``GET /v1/schema``.
- ``outputs``: the output root: where a job may write, staging, and publishing a finished world.
- ``jobs``: job records, the queue, and one worker thread per loaded backend (one per device).
- ``service``: loads the backends once and ties queue, workers and output root together.
- ``http``: the HTTP front (standard library ``http.server``), routes and error replies.
- ``client``: what `worldgen pano --server URL` uses (standard library only: never imports torch).

Library code here never prints; the CLI (``worldgen.cli.commands.serve``) does. See docs/server.md.
"""

API_PREFIX = "/v1"
DEFAULT_PORT = 8765
