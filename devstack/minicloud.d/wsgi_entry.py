"""WSGI entry for minicloud's API services under gunicorn.

Keystone and nova hand ``sys.argv`` to oslo.config, which rejects gunicorn's
own flags (``--bind`` ...). This module clears argv, then imports the real
entry module named by MINICLOUD_WSGI_MODULE (e.g. ``nova.wsgi.osapi_compute``)
and exposes its ``application``. Config files come from each service's usual
environment variables (OS_NOVA_CONFIG_DIR / OS_NOVA_CONFIG_FILES with
api-paste.ini first, OS_KEYSTONE_CONFIG_DIR, ...).
"""

import importlib
import os
import sys

sys.argv = [os.environ.get("MINICLOUD_SERVICE", "minicloud-wsgi")]

_module = os.environ.get("MINICLOUD_WSGI_MODULE")
if not _module:
    raise RuntimeError("MINICLOUD_WSGI_MODULE is not set")
application = importlib.import_module(_module).application
