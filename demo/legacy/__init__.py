"""The article's code, written for django-background-tasks, on pgqueue's drop-in: only the
imports changed."""
