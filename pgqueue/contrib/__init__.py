"""Integrations with frameworks; each lives in its own subpackage and is imported only on demand."""
