"""All models, imported here so that `db.metadata` (and Alembic) sees every table."""

from .account import ROLES, Account, ApiToken
from .agency import Agency, Category, CategoryGroup, RoutingRule
from .area import CALENDAR_DAY_KINDS, AdminArea, CalendarDay, City
from .audit import AuditEntry
from .base import SRID, Base
from .mapcells import ALL_CATEGORIES, MapCell, MapState
from .metrics import CUSTODY_STATES, METRIC_STATES, MetricCustody, MetricReport, MetricResult, MetricState
from .open311 import Open311Key
from .outbox import OutboxMessage
from .report import (APPROXIMATE_LOCATION_SOURCES, EVENT_LABELS, FINISHED_STATUSES, LOCATION_SOURCES, OPEN_STATUSES,
                     OVERDUE_LABEL, STATUS_LABELS, Feedback, IdempotencyKey, Photo, Report, ReportCodeCounter,
                     ReportContact, ReportEvent, ReportStatus)

__all__ = [
    "ALL_CATEGORIES", "APPROXIMATE_LOCATION_SOURCES", "CALENDAR_DAY_KINDS", "ROLES", "SRID", "Account",
    "AdminArea", "Agency", "ApiToken", "AuditEntry", "Base", "CalendarDay", "CUSTODY_STATES", "Category",
    "CategoryGroup", "City", "EVENT_LABELS", "FINISHED_STATUSES", "Feedback", "IdempotencyKey", "LOCATION_SOURCES",
    "METRIC_STATES", "MapCell", "MapState", "MetricCustody", "MetricReport", "MetricResult", "MetricState",
    "OPEN_STATUSES", "OVERDUE_LABEL", "Open311Key", "OutboxMessage", "Photo", "Report", "ReportCodeCounter",
    "ReportContact", "ReportEvent", "ReportStatus", "RoutingRule", "STATUS_LABELS",
]
