"""The pages a UK public-sector reader looks for: privacy notice, accessibility statement,
contact. Their figures come from the settings, their wording from templates a publisher
may override (``TEMPLATE_OVERRIDES_DIR``)."""
