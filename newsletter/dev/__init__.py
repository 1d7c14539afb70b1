"""`newsletter dev`: the embedded PostgreSQL, the capture SMTP server and the dev server."""
