"""Sessions and traffic: live RADIUS sessions, their history, the post-auth log, traffic per service, revenue leaks."""
