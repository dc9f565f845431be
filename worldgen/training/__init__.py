"""Training: teach JointNet a new dense modality (``worldgen train``).

- ``config.TrainConfig``: everything a run is told; stage defaults from the paper.
- ``data``: images + captions (+ modality files, else the plugin's cached estimator), map or streaming.
- ``masks``: random masks for the inpaint stage.
- ``models``: the pair to train and the frozen VAE/text encoder, from ``--base``.
- ``loop.train(config, progress)``: the loop (Accelerate), returns a ``TrainResult``.
- ``checkpoints``: resumable state; ``export``: the final model in the official layout.
- ``samples``: validation samples rendered with ``JointNetPipeline``.

Heavy imports (torch, diffusers) happen inside those modules, not here.
"""
