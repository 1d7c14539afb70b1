"""Delivery: claiming queued mail, the SMTP connection pool, the sender loop."""
