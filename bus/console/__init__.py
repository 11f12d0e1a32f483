"""The web console: static files (``static/``) served at ``/console/`` by ``lgsp serve``."""
