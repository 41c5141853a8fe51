"""Administration: administrators, roles, API keys, the operations log, settings and custom fields."""
