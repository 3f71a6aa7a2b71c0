from sinergi_client.resources.agencies import Agencies, AsyncAgencies
from sinergi_client.resources.alerts import Alerts, AsyncAlerts
from sinergi_client.resources.audit import AsyncAudit, Audit
from sinergi_client.resources.events import AsyncEventFeed, AsyncEvents, EventFeed, Events
from sinergi_client.resources.manifests import AsyncManifests, Manifests
from sinergi_client.resources.notices import AsyncNotices, Notices
from sinergi_client.resources.referrals import AsyncReferrals, Referrals
from sinergi_client.resources.regions import AsyncRegions, Regions
from sinergi_client.resources.register import AsyncRegister, Register
from sinergi_client.resources.returnees import AsyncReturnees, Returnees
from sinergi_client.resources.stats import AsyncStatistics, Statistics
from sinergi_client.resources.webhooks import AsyncWebhooks, Webhooks

__all__ = [
    "Agencies", "Alerts", "AsyncAgencies", "AsyncAlerts", "AsyncAudit", "AsyncEventFeed", "AsyncEvents",
    "AsyncManifests", "AsyncNotices", "AsyncReferrals", "AsyncRegions", "AsyncRegister", "AsyncReturnees",
    "AsyncStatistics", "AsyncWebhooks", "Audit", "EventFeed", "Events", "Manifests", "Notices", "Referrals",
    "Regions", "Register", "Returnees", "Statistics", "Webhooks",
]
