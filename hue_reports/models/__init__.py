"""All models, imported here so that `db.metadata` (and Alembic) sees every table."""

from .account import ROLES, Account, ApiToken
from .agency import Agency, Category, CategoryGroup, RoutingRule
from .area import AdminArea, City
from .base import SRID, Base
from .outbox import OutboxMessage
from .report import (FINISHED_STATUSES, OPEN_STATUSES, OVERDUE_LABEL, STATUS_LABELS, Feedback, Photo, Report,
                     ReportContact, ReportEvent, ReportStatus)

__all__ = [
    "ROLES", "SRID", "Account", "AdminArea", "Agency", "ApiToken", "Base", "Category", "CategoryGroup", "City",
    "FINISHED_STATUSES", "Feedback", "OPEN_STATUSES", "OVERDUE_LABEL", "OutboxMessage", "Photo", "Report",
    "ReportContact", "ReportEvent", "ReportStatus", "RoutingRule", "STATUS_LABELS",
]
