"""Dataset catalogue, grants, PII tokens, delivery under a grant, access log, Kafka ACLs.

Seams for other packages:

- ``check_attribute_ownership(settings, dataset_name, field_names) -> list[Finding]``
  (connectors: warn when a table collects an attribute another dataset owns);
- ``live_grant(settings, grant_id=... | agency=..., dataset=...) -> GrantView`` and
  ``apply_grant(event, grant) -> event`` (sink connectors acting for an agency);
- ``bus.catalog.delivery.deliver(settings, grant_or_agency, dataset, sink, ...)`` (a bounded
  delivery run; a module of its own as it needs the Kafka client);
- ``record_access(settings, *, principal, agency, dataset, purpose, records, action, ...)``
  (replays and any other read of a dataset); ``add_access(session, ...)`` adds the same
  entry within the caller's transaction.
"""

from bus.catalog.access_log import add_access, query_access, record_access
from bus.catalog.agencies import add_agency, list_agencies
from bus.catalog.datasets import (
    DatasetInfo,
    Finding,
    check_attribute_ownership,
    dataset_topics,
    dated_topic_lines,
    dated_topics,
    get_dataset,
    list_datasets,
    publish_dataset,
    search_datasets,
)
from bus.catalog.errors import AccessDeniedError
from bus.catalog.grants import GrantInfo, add_grant, list_grants, live_grant, revoke_grant
from bus.catalog.masking import GrantView, apply_grant, load_pii_key, token

__all__ = [
    "AccessDeniedError",
    "DatasetInfo",
    "Finding",
    "GrantInfo",
    "GrantView",
    "add_access",
    "add_agency",
    "add_grant",
    "apply_grant",
    "check_attribute_ownership",
    "dataset_topics",
    "dated_topic_lines",
    "dated_topics",
    "get_dataset",
    "list_agencies",
    "list_datasets",
    "list_grants",
    "live_grant",
    "load_pii_key",
    "publish_dataset",
    "query_access",
    "record_access",
    "revoke_grant",
    "search_datasets",
    "token",
]
