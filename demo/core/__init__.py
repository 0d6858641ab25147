"""pgqueue without Django (`python -m demo.core`): the same jobs on the plain Python API."""
