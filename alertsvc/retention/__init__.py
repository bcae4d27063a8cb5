"""Retention: what the service stops keeping, and when (outbox rows and message bodies,
digest and alert ledgers, the addresses of people who have left)."""
