"""Peer-side code: runs inside each system's own venv (stdlib + that system only).

Each `<system>.py` module defines the no-op task the way that system's docs show and the
enqueue calls; `producer.main` turns them into the commands the harness runs.
"""
