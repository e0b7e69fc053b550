"""The WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from blog.web import create_app

app = create_app()
