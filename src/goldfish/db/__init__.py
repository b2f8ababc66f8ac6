"""The project database: connections, migrations and one repository module per aggregate.

This package is the only place in Goldfish that contains SQL.
"""
