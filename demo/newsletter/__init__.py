"""The newsletter: subscribers, issues and their deliveries, sent by pgqueue's own API."""
