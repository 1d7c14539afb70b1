"""Settings, the database (pool, named queries, migrations), paths, errors, tokens, signed
identifiers, DKIM signatures and logs.
"""
