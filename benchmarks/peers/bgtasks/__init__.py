"""django-background-tasks peer: a Django app whose `tasks` module `process_tasks` discovers."""
