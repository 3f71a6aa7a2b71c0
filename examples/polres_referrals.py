"""Polres: work the referrals received through their states; a 412 means someone else moved
the referral since it was read: read it again and decide on what it is now.

    SINERGI_BASE_URL=... SINERGI_CLIENT_ID=... SINERGI_CLIENT_SECRET=... \\
        python examples/polres_referrals.py [--complete]

requested -> received -> accepted -> in-progress (-> completed with ``--complete``).
"""

from __future__ import annotations

import argparse

from sinergi_client import PreconditionFailedError, Sinergi
from sinergi_client.models import Referral, ReferralAction, ReferralStatus, ReferralSummary

NEXT: dict[str, ReferralAction] = {"requested": "receive", "received": "accept", "accepted": "start"}


def work(client: Sinergi, referral: Referral | ReferralSummary, complete: bool = False) -> Referral | ReferralSummary:
    """Move one referral as far as this office takes it; returns it as it ends up."""
    steps: dict[str, ReferralAction] = {**NEXT, **({"in-progress": "complete"} if complete else {})}
    while referral.status in steps:
        action = steps[referral.status]
        try:
            referral = client.referrals.transition(referral, action)  # If-Match: the ETag read
        except PreconditionFailedError:
            print(f"{referral.id}: changed since it was read (412); reading it again")
            referral = client.referrals.get(referral.id)
            continue
        print(f"{referral.id}: {action} -> {referral.status}")
    return referral


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complete", action="store_true", help="also complete the referrals in progress")
    args = parser.parse_args()
    with Sinergi() as client:
        statuses: list[ReferralStatus] = ["requested", "received", "accepted"]
        if args.complete:
            statuses.append("in-progress")
        for status in statuses:
            for referral in list(client.referrals.list(role="received", status=status)):
                work(client, referral, args.complete)


if __name__ == "__main__":
    main()
