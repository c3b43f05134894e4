"""Operating-system primitives: atomic publication, locks, JSON read back, Slurm's commands."""
