"""The worker (``lastmile worker``): scheduled and background jobs on pgqueuer's queue in PostgreSQL."""
