"""Transactional mail: the outbox queue and the mails it carries."""
