#!/usr/bin/env python
"""manage.py of the demo project (`python -m demo` runs it for migrate and the worker). Run it
from anywhere; it needs PGQUEUE_DSN or DATABASE_URL, which `python -m demo` sets."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
