"""Topics: what readers follow."""
