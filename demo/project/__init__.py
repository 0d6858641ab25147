"""The demo's Django project: settings and URLs (apps: newsletter, reports, legacy)."""
