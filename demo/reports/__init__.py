"""Delivery reports, generated through Django's Tasks framework on pgqueue's backend."""
