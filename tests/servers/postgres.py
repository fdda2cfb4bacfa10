"""A PostgreSQL cluster for the tests (filled in by the PostgreSQL work)."""
