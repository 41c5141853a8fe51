"""The customers' self-service portal: its own login and sessions, white-label brands by host name."""
