"""What the published interface (docs/mart.md, docs/scorecard.md) says, written out independently of the code.

The tests check the code against these lists, so they are deliberately not imported from pkpi
(include/pkpi/scorecard/model.py keeps its own SCORECARD_COLUMNS): a test that
read the expectation from the code under test could not catch the two drifting.
"""

from __future__ import annotations

# docs/mart.md, the KPI catalogue: every KPI of the catalogue.
CATALOGUE_KPIS = frozenset({
    "CON_CONTACTS", "CON_REFERRALS", "CON_CONVERSION_PCT", "CON_NFA_PCT", "CON_EARLY_HELP_PCT",
    "CON_REREFERRAL_12M_PCT", "CON_PER_10K", "TRN_ELEARN_COMMENCED", "TRN_ELEARN_COMPLETED",
    "TRN_ELEARN_COMPLETION_PCT", "TRN_ATTENDANCES", "TRN_DNA_PCT", "TRN_POSITIVE_IMPACT_PCT",
    "CDN_NOTIFICATIONS", "CDN_UNDER_1_PCT", "CDN_UNEXPECTED_JAR_PCT", "FIN_CONTRIBUTIONS_GBP",
    "FIN_GRANT_INCOME_GBP", "FIN_TOTAL_INCOME_GBP", "FIN_SHARE_PCT", "FIN_YOY_CHANGE_PCT",
    "RET_ON_TIME_PCT", "RET_REJECTED",
})

# docs/scorecard.md: the scorecard's columns, in order.
SCORECARD_COLUMNS = [
    "period", "kpi_code", "kpi_name", "theme", "unit", "value", "fytd_value",
    "previous_month_value", "same_month_last_year_value", "target", "polarity", "rag", "trend",
    "provisional", "suppressed",
]

# docs/scorecard.md: the KPIs the scorecard shows, at the least.
SCORECARD_KPIS = frozenset({
    "CON_CONTACTS", "CON_CONVERSION_PCT", "CON_REREFERRAL_12M_PCT", "TRN_ELEARN_COMPLETION_PCT",
    "TRN_ATTENDANCES", "CDN_NOTIFICATIONS", "CDN_UNEXPECTED_JAR_PCT", "FIN_CONTRIBUTIONS_GBP",
    "RET_ON_TIME_PCT",
})
