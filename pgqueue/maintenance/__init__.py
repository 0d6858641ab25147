"""Background upkeep every worker runs beside its jobs: retention (pruning finished jobs)."""
