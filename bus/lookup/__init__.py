"""The once-only lookup: a dataset's current state kept by the bus (a sink connector per
dataset, ``bus.lookup.store``) and read by key under a grant (``bus.lookup.reader``)."""
