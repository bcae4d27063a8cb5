"""Digests and immediate alerts: turning new articles into the emails subscribers asked for."""
