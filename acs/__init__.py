"""acs: the CWMP/TR-069 auto-configuration server (docs/acs.md)."""
