"""The worker: claims jobs in batches, runs them, and acknowledges them in batches."""
