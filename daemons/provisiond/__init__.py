"""provisiond: keeps every MikroTik router in step with billing through the RouterOS API.

PostgreSQL says what each router should hold (desired.py), the router says what it holds
(client.py reads the objects lastmile owns), plan.py computes the smallest change between the
two, and reconcile.py applies it and records the outcome; scheduler.py decides when each router
is reconciled (a NOTIFY, a period, a reconnect). tool.py is `lastmile routers`.
"""
