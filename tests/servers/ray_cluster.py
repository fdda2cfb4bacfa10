"""A local Ray cluster for the tests (filled in by the Ray work)."""
