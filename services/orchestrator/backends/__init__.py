"""Session history stores: in-memory (default) and Redis."""
