"""The CycleGAN LightningModule and what its step uses: losses, image pools, LR schedules, speed switches."""
