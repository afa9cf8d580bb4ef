"""Keystone's WSGI app for gunicorn: keystone hands sys.argv to oslo.config,
which would reject gunicorn's own flags, so clear them first."""
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
