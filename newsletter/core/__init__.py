"""Settings, the database (pool, named queries, migrations), paths, errors, tokens, signed
identifiers and logs.
"""
