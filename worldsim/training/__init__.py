"""Training with PyTorch Lightning: datamodule over zarr stores, the LightningModule, callbacks, CLI, export."""
