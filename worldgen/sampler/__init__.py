"""The backend-agnostic tiled sampler: any canvas from a model trained on fixed-size squares.

- ``windows``: window layouts (circular in x for 360-degree spans) and their edge-ramped weights.
- ``tiled``: the denoising loop (all windows of a step batched, one scheduler step per step).
- ``vae_tiles``: tiled, wrap-aware VAE encode/decode.
- ``canvas``: resizing, placing and masking layers in pixel space.
- ``requests``: the request dataclasses of refine/outpaint/estimate/paint/edit.
"""
