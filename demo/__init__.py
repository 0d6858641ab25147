"""The pgqueue demo: a Django project built around the article's jobs, a newsletter to many
subscribers and a report (`python -m demo`, `make demo`); `demo.core` is the same without Django.
See docs/demo.md."""
