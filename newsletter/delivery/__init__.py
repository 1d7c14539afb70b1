"""Delivery: the two queues (issue deliveries, the transactional outbox), the
SMTP connection pool, the worker loop and its periodic chores."""
