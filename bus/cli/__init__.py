"""The ``lgsp`` command line. Each module here adds its commands through a ``commands`` list;
``main`` discovers them, so a new command group is one new module."""
