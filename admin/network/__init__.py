"""Network: NAS, routers and their sync state, IP pools and leases, flow exporters."""
