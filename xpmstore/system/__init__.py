"""Operating-system primitives: atomic publication, locks, mounts, JSON read back, Slurm."""
