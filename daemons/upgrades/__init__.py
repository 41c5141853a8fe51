"""The schema upgrade steps: ``NNN.sql`` makes schema version NNN from NNN-1.

SQL files only; a package so that they are package data and go into the wheel. How to write
one is at the top of schema.sql ("Changing the schema"); ``daemons/schemafiles.py`` reads them
and ``daemons.db.apply_schema`` runs them.
"""
