"""Running the service: API keys, the audit trail, /ops sessions, stats, metrics and the
status view.
"""
