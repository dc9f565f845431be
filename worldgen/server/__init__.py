"""`worldgen serve`: a local HTTP API that keeps models loaded and makes worlds from a queue.

- ``schema``: the job request (``worldgen.requests.WorldRequest``, the model its published JSON
  Schema is generated from) as a ``JobSpec``, and the job status schema.
- ``outputs``: the output root: where a job may write, staging, and publishing a finished world.
- ``jobs``: job records, the queue, and one worker thread per loaded backend (one per device).
- ``service``: loads the backends once and ties queue, workers and output root together.
- ``worlds``: the one place the server calls generation code: ``worldgen.api.WorldPipeline``, one
  per device, loaded once (nothing below the API).
- ``app``: the routes (FastAPI): jobs, server-sent events, files, one-line JSON errors.
- ``guard``: Host/Origin/token checks, time limits per request, a deadline for headers.
- ``http``: binds the socket and runs the app with uvicorn.
- ``client``: what `worldgen pano --server URL` uses (standard library only: never imports torch).
- ``remote``: `pano --server`'s logic: the job request for pano's arguments, the destination check,
  which values are left to the server; the CLI only parses and prints.

Library code here never prints; the CLI (``worldgen.cli.commands.serve``) does. See docs/server.md.
"""

API_PREFIX = "/v1"
DEFAULT_PORT = 8765
