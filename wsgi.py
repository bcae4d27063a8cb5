"""``gunicorn wsgi:app``; ``gunicorn.conf.py`` beside it checks the settings first."""

from alertsvc import create_app

app = create_app()
