"""Settings, the database (pool, named queries, migrations), paths, errors, tokens, signed
identifiers, DKIM signatures and logs; the lists every layer shares (roles, subscriber
statuses, the largest id), how rate limits group clients, and helpers kept in app state.
"""
