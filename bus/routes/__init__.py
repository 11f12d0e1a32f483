"""Routes: roll a dataset up from ward topics to district and city topics, or fan city
master data down to ward topics. Each event keeps its ``event_id`` and ``source``."""

from bus.routes.plan import Route, init_subjects, plan_routes
from bus.routes.run import RouteReport, route_lag, run_fan_down, run_routes

__all__ = [
    "Route",
    "RouteReport",
    "init_subjects",
    "plan_routes",
    "route_lag",
    "run_fan_down",
    "run_routes",
]
