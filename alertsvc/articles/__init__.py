"""Articles in: feeds, the JSON API and the CLI, mapped to topics (including keyword topics)."""
