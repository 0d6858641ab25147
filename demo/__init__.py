"""The pgqueue demo: real jobs enqueued and run end to end (`python -m demo`)."""
