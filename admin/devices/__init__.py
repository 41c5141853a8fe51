"""CPE devices (the ACS's): devices, tasks, connection requests, presets, files, the access log."""
