from sinergi_client.resources.agencies import Agencies, AsyncAgencies
from sinergi_client.resources.audit import AsyncAudit, Audit
from sinergi_client.resources.events import AsyncEventFeed, AsyncEvents, EventFeed, Events
from sinergi_client.resources.notices import AsyncNotices, Notices
from sinergi_client.resources.referrals import AsyncReferrals, Referrals
from sinergi_client.resources.returnees import AsyncReturnees, Returnees
from sinergi_client.resources.stats import AsyncStatistics, Statistics
from sinergi_client.resources.webhooks import AsyncWebhooks, Webhooks

__all__ = [
    "Agencies", "AsyncAgencies", "AsyncAudit", "AsyncEventFeed", "AsyncEvents", "AsyncNotices", "AsyncReferrals",
    "AsyncReturnees", "AsyncStatistics", "AsyncWebhooks", "Audit", "EventFeed", "Events", "Notices", "Referrals",
    "Returnees", "Statistics", "Webhooks",
]
