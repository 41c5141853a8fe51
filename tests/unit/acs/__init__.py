"""The ACS's pure parts (no sockets, no database)."""
