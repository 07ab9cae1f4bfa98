"""All models, imported here so that `db.metadata` (and Alembic) sees every table."""

from .account import ROLES, Account, ApiToken
from .agency import Agency, Category, CategoryGroup, RoutingRule
from .area import AdminArea, City
from .base import SRID, Base
from .outbox import OutboxMessage
from .report import (EVENT_LABELS, FINISHED_STATUSES, OPEN_STATUSES, OVERDUE_LABEL, STATUS_LABELS, Feedback,
                     IdempotencyKey, Photo, Report, ReportCodeCounter, ReportContact, ReportEvent, ReportStatus)

__all__ = [
    "ROLES", "SRID", "Account", "AdminArea", "Agency", "ApiToken", "Base", "Category", "CategoryGroup", "City",
    "EVENT_LABELS", "FINISHED_STATUSES", "Feedback", "IdempotencyKey", "OPEN_STATUSES", "OVERDUE_LABEL",
    "OutboxMessage", "Photo", "Report", "ReportCodeCounter", "ReportContact", "ReportEvent", "ReportStatus",
    "RoutingRule", "STATUS_LABELS",
]
