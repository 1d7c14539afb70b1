"""Running the service: people's accounts and console sessions, API keys, the
audit trail, stats, metrics, the status view and the command line's other
reports, and the Korean words they share.
"""
