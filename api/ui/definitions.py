"""What the console's figures mean, in the words of the specification (SPEC §2–§4),
shown on hover and printed beneath the figures."""

from __future__ import annotations

KPI_DEFINITIONS: dict[str, str] = {
    "clients_total": "Clients registered by the instant, not merged away, not erased.",
    "stage_counts": "How many clients are in each lifecycle stage at the instant.",
    "no_contact_over_30d": (
        "Live (non-dead) clients whose last contact or purchase is older than 30 days,"
        " or who never had one and registered that long ago."
    ),
    "no_contact_over_180d": (
        "Live (non-dead) clients whose last contact or purchase is older than 180 days,"
        " or who never had one and registered that long ago."
    ),
    "dead_clients": "Clients in stage dead at the instant.",
    "lost_per_year": (
        "Transitions to dead (an explicit loss, or by inactivity) per calendar year,"
        " up to the instant."
    ),
    "churn_reasons": "Transitions to dead up to the instant, by reason.",
    "avg_purchases_per_client": "Purchases ÷ clients with at least one purchase.",
    "avg_check": "Revenue ÷ purchases.",
    "avg_margin": "Mean margin (amount − cost) per purchase.",
    "margin_ratio": "Total margin ÷ revenue.",
    "avg_customer_lifetime_days": (
        "Mean over paying clients of (end − first purchase), in days; end is the moment"
        " they became dead, or the instant."
    ),
    "avg_lifecycle_days": (
        "Mean over paying clients of (end − registration), in days; end is the moment"
        " they became dead, or the instant."
    ),
    "churn_rate": (
        "Clients who became dead during the year before the instant ÷ paying, non-dead"
        " clients at its start."
    ),
    "clv": (
        "Customer lifetime value: average check × purchases per client per year ×"
        " margin ratio × lifetime in years."
    ),
    "unanswered_leads": (
        "Leads registered more than CRM_LEAD_RESPONSE_MINUTES ago that nobody has"
        " contacted or given a follow-up yet, and that have not bought or been lost."
    ),
    "median_first_response_minutes": (
        "Median minutes from registration to first contact, over the leads registered"
        " in the 30 days before the instant."
    ),
}
"""SPEC §4, one entry per KPI the API serves (a test holds the keys equal)."""

STAGE_DEFINITIONS: dict[str, str] = {
    "potential": "Showed interest, has never paid.",
    "new": "Has paid, is not dead, is not (yet) loyal.",
    "loyal": (
        "Pays regularly: at least the loyal number of purchases within the loyalty window"
        " (counting, for a returned client, only purchases since the return)."
    ),
    "dead": (
        "Has not paid for more than the dormancy days, or was lost after the last"
        " purchase; a client who never paid and was lost is dead too."
    ),
    "returned": "Was dead, then paid again, and is not yet loyal again.",
}
"""SPEC §2, the lifecycle stages."""

FUNNEL_DEFINITIONS: dict[str, str] = {
    "reached": "Deals that were ever in this stage or any later one (or won).",
    "current": "Deals in this stage at the instant.",
    "conversion_next": "Reached the next stage ÷ reached this one (after the last: won).",
    "conversion_cumulative": "Reached this stage ÷ reached the first.",
    "avg_days_in_stage": "Mean length of the finished stays in this stage, in days.",
    "median_days_in_stage": "Median length of the finished stays in this stage, in days.",
    "win_rate": "Won ÷ (won + lost).",
    "avg_sales_cycle_days": "Mean days from opening to winning, over won deals.",
}
"""SPEC §3, the funnel's figures."""

KPI_LABELS: dict[str, str] = {
    "clients_total": "Clients",
    "stage_counts": "Clients per stage",
    "no_contact_over_30d": "No contact for 30 days",
    "no_contact_over_180d": "No contact for 180 days",
    "dead_clients": "Dead clients",
    "lost_per_year": "Lost per year",
    "churn_reasons": "Why clients were lost",
    "avg_purchases_per_client": "Purchases per paying client",
    "avg_check": "Average check",
    "avg_margin": "Average margin",
    "margin_ratio": "Margin ratio",
    "avg_customer_lifetime_days": "Customer lifetime (days)",
    "avg_lifecycle_days": "Lifecycle from registration (days)",
    "churn_rate": "Churn rate (last 12 months)",
    "clv": "Customer lifetime value",
    "unanswered_leads": "Unanswered leads",
    "median_first_response_minutes": "First response (median minutes)",
}
