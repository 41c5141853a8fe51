"""The admin: web pages for operators (``/admin``), the REST API (``/api/v1``) and ``/metrics``.

One area per domain (customers, tariffs, network, sessions, administration, ...), each of the same
shape: ``routes.py`` (thin handlers, each declaring its permission), ``queries.py`` (the area's SQL),
``schemas.py`` (msgspec structs: validation and the OpenAPI document) and ``templates/<area>/``.
docs/architecture.md ("The admin") walks through one.
"""
