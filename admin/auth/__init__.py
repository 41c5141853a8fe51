"""Who is asking and what they may do: administrators' passwords, login sessions, the second
factor, roles and permissions, API keys, login throttling."""
