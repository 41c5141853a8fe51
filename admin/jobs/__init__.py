"""Jobs: the worker's queue, its log and its schedules (under Administration)."""
