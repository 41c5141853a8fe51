"""The REST API's own pages: its OpenAPI document and a readable reference built from it."""
