"""A complete, valid FormReading and ways to spoil it, built directly (no PDF)."""

from __future__ import annotations

from mailbot import PROJECT_ROOT
from mailbot.forms.reading import FormReading, Seal

RULES_DIR = PROJECT_ROOT / "rules"

RED_SEAL = Seal(present=True, near_field=True, color="red", confidence=0.95, page=1)

VALID_FIELDS = {
    "submitted_on": "2024-06-03",
    "application_type": "domestic",
    "company_name": "株式会社サンプル精機",
    "corporate_number": "7000012050002",  # 国税庁's own number: a valid check digit
    "representative_title": "代表取締役社長",
    "representative_name": "山田 太郎",
    "address": "東京都港区赤坂1-12-32",
    "industry": "精密機械製造",
    "employees": 1200,
    "contact_name": "田中 花子",
    "contact_department": "法務部 課長",
    "contact_phone": "03-3582-5198",
    "contact_email": "tanaka@example.co.jp",
    "jetro_registered": True,
    "country": "VN",
    "base_status": "existing",
    "base_kinds": ["subsidiary", "factory"],
    "base_name": "Sample Seiki Vietnam Co., Ltd.",
    "base_address": "Hanoi, Vietnam",
    "consultation_hours": 10,
    "training_hours": 8,
    "current_issues": "退職者による技術流出が心配です。",
    "pledge_commitment": True,
    "pledge_experience": True,
    "pledge_publicity": True,
}


def reading(*, seal: Seal = RED_SEAL, drop: tuple[str, ...] = (), **changes) -> FormReading:
    """The valid reading with some fields changed (None drops one) or removed."""
    fields = {**VALID_FIELDS, **changes}
    fields = {k: v for k, v in fields.items() if v is not None and k not in drop}
    return FormReading(
        form="application", source="text", pages=1, form_page=1, fields=fields, seal=seal
    )


def codes(problems) -> list[str]:
    return [p.code for p in problems]

