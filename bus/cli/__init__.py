"""The ``lgsp`` command line. ``main.COMMANDS`` names each top-level command's module, which is
imported only when that command runs, so a new command group is one new module and one line."""
