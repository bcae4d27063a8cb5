"""Delivery: the outbox, the workers that drain it, and the mail transports."""
