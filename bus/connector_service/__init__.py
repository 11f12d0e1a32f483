"""The bus's side of connectors: registering one (checks, schemas, stored row) and giving a
source its catalogued datasets. The connector types themselves live in ``connectors``."""
