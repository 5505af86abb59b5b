"""HubSpot contacts export (CSV or XLSX saved as CSV): one row per contact, properties by
their labels. Lifecycle stages load as HubSpot's internal values (``salesqualifiedlead``).
Dates are wall-clock time in the portal's timezone (``source_timezones``
for crm_contacts). ``Original Source`` labels (or internal values) map to the
warehouse's channel keys."""
from pipelines.raw.dialects import Dialect

# HubSpot's Original Source (label or internal value, normalised to snake_case) -> channel
ORIGINAL_SOURCE = {
    "organic_search": "organic_search",
    "paid_search": "paid_search",
    "email_marketing": "email",
    "organic_social": "organic_social",
    "social_media": "organic_social",
    "paid_social": "paid_social",
    "referrals": "referral",
    "direct_traffic": "direct",
    "other_campaigns": "other_campaigns",
    "offline_sources": "offline",
    "offline": "offline",
    "ai_referrals": "ai_referral",
}


def _original_source(expr: str) -> str:
    key = f"trim(regexp_replace(lower(trim({expr})), '[^a-z0-9]+', '_', 'g'), '_')"
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in ORIGINAL_SOURCE.items())
    return f"CASE {key} {cases} ELSE nullif({key}, '') END"


DIALECT = Dialect(
    name="hubspot_contacts",
    source="crm_contacts",
    description="HubSpot contacts export",
    signature=("Record ID", "Create Date"),
    columns={
        "contact_id": "@{Record ID}",
        "created_at": "@{Create Date}",
        "updated_at": "@{Last Modified Date}",
        "email": "@{Email}",
        "phone": "coalesce(nullif(trim(@{Phone Number}), ''), nullif(trim(@{Mobile Phone Number}), ''))",
        "first_name": "@{First Name}",
        "last_name": "@{Last Name}",
        "company": "@{Company Name}",
        "country": "@{Country/Region}",
        "city": "@{City}",
        # labels ("Marketing Qualified Lead") or internal values ("marketingqualifiedlead") ->
        # the internal value
        "crm_lifecycle_stage": "nullif(regexp_replace(lower(@{Lifecycle Stage}), '[^a-z0-9]', '', 'g'), '')",
        "lead_source": _original_source("@{Original Source}"),
        "lead_score": "@{HubSpot Score}",
    },
    consumed=("Record ID", "Create Date", "Last Modified Date", "Email", "Phone Number", "Mobile Phone Number",
              "First Name", "Last Name", "Company Name", "Country/Region", "City", "Lifecycle Stage",
              "Original Source", "HubSpot Score"),
    known=("Contact owner", "Lead Status", "Marketing contact status", "Last Activity Date", "Associated Company",
           "Associated Company IDs", "Original Source Drill-Down 1", "Original Source Drill-Down 2",
           "Latest Source", "Job Title", "State/Region", "Postal Code", "Street Address", "Website URL",
           "Became a Customer Date", "Became a Lead Date", "Number of Sales Activities", "Recent Deal Amount",
           "Email Domain", "Time Zone", "Preferred language"),
)
