"""RADIUS for lastmile: authentication, accounting and CoA/Disconnect (RFC 2865, 2866, 5176)."""
