"""The bus as a service: ``lgsp serve``, one FastAPI app over the mechanisms the CLI uses.

``app.create_app(ctx)`` builds the app around one process ``Context``; ``auth`` checks API keys,
roles and rate limits; one router module per area (``health``, ``registry``, ``connectors``,
``metrics``). Routes call the functions the CLI calls: no rule lives only in a route.
"""
