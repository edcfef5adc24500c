"""The vocabularies of the synthetic dataset: plans, billing, countries, channels, event and
feedback kinds, churn causes and feedback texts, with the index constants the simulation uses."""

from __future__ import annotations

PLANS = ("basic", "standard", "premium", "payg")
BASIC, STANDARD, PREMIUM, PAYG = 0, 1, 2, 3
BILLING = ("subscription", "payg")
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "CA", "AU")
COUNTRY_SHARE = (0.38, 0.14, 0.12, 0.09, 0.10, 0.08, 0.05, 0.04)
CHANNELS = ("organic", "paid_search", "referral", "partner", "social")
CHANNEL_SHARE = (0.40, 0.25, 0.15, 0.10, 0.10)
EVENT_TYPES = ("login", "feature_use", "content_view", "support_visit")
LOGIN, SUPPORT_VISIT = 0, 3
FEEDBACK_KINDS = ("rating", "nps", "csat", "ticket", "complaint")
TICKET, COMPLAINT = 3, 4
CAUSES = ("disengagement", "service", "price", "random")
DISENGAGEMENT, SERVICE, PRICE, RANDOM = 0, 1, 2, 3

SURVEY_TEXT = ("love it", "works well", "it is fine", "could be better", "disappointed")
TICKET_TEXT = (
    "cannot log in",
    "billing question",
    "bug report",
    "how do I export data",
    "sync not working",
    "slow performance",
)
SERVICE_COMPLAINTS = (
    "app keeps crashing",
    "support never answered",
    "data lost after update",
    "constant outages",
)
PRICE_COMPLAINTS = ("too expensive", "price increase not acceptable", "found a cheaper alternative")
FEEDBACK_TEXT = SURVEY_TEXT + TICKET_TEXT + SERVICE_COMPLAINTS + PRICE_COMPLAINTS
TICKET0 = len(SURVEY_TEXT)
SERVICE0 = TICKET0 + len(TICKET_TEXT)
PRICE0 = SERVICE0 + len(SERVICE_COMPLAINTS)
