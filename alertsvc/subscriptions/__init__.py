"""The subscriber journey: sign up, confirm, manage, unsubscribe."""
