"""The scanned-form corpus: filled forms (fill.py) printed and scanned (scan.py) in many ways.

A dozen scans: 150/200/300 dpi, −2..+2°, sensor noise, JPEG quality 50–85,
every seal variant (red on the row, none, misplaced, black, as vector or
pasted image) and one grey scan, over six applicants with different
companies, addresses, numbers and options.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from mailbot.forms.fill import corporate_check_digit, render_application, sample_values
from mailbot.forms.scan import simulate_scan


def corporate_number(base12: str) -> str:
    """A valid 法人番号 from its 12 base digits."""
    return f"{corporate_check_digit(base12)}{base12}"


APPLICANTS: tuple[dict, ...] = (
    sample_values(),
    sample_values(
        submitted_on="2026-12-01", company_name="株式会社北斗テクノロジー",
        corporate_number=corporate_number("120001077001"), representative_title="代表取締役",
        representative_name="鈴木 一郎", address="大阪府大阪市北区梅田3-4-5 梅田タワー12階",
        industry="電子部品製造", employees=85, contact_name="田中 美咲", contact_department="経営企画部",
        contact_phone="06-6345-7890", contact_email="m.tanaka@hokuto-tech.jp", country="TH",
        base_kinds=["factory"], base_name="HOKUTO TECHNOLOGY (THAILAND) CO., LTD.",
        base_address="Amata City Industrial Estate, Chonburi, Thailand", base_established="2015-09",
        investment_ratio=60, consultation_hours=12, training_hours=0,
        current_issues="現地社員の転職に伴う顧客情報の流出を防ぎたい。",
    ),
    sample_values(
        submitted_on="2027-01-15", company_name="有限会社山本食品",
        corporate_number=corporate_number("430002033456"), representative_name="山本 健二",
        address="北海道札幌市中央区北1条西2-1", industry="食品製造業", employees=23,
        contact_name="山本 さくら", contact_department="総務課", contact_phone="011-222-3333",
        contact_email="info@yamamoto-foods.co.jp", country="CN", base_status="planned",
        base_kinds=["rep_office"], base_name=None, base_address=None, base_established="2027-04",
        investment_ratio=None, consultation_hours=5, training_hours=5,
        current_issues="レシピと製造ノウハウの管理方法を知りたい。",
    ),
    sample_values(
        submitted_on="2026-10-30", company_name="株式会社ミライ化学",
        corporate_number=corporate_number("180001099123"), representative_title="代表取締役",
        representative_name="高橋 誠", address="愛知県名古屋市中村区名駅4-7-1",
        industry="化学工業", employees=3450, contact_name="伊藤 恵", contact_department="知的財産部 部長",
        contact_phone="052-555-1234", contact_email="ito.megumi@mirai-chem.com", country="EU:DE",
        base_kinds=["subsidiary"], base_name="Mirai Chemical GmbH",
        base_address="Koenigsallee 60, 40212 Duesseldorf, Germany", base_established="2020-02",
        investment_ratio=100, consultation_hours=15, training_hours=8,
    ),
    sample_values(
        submitted_on="2026-11-02", application_type="local", company_name="株式会社サクラ物流",
        corporate_number=corporate_number("011001044556"), representative_title="取締役社長",
        representative_name="渡辺 健太", address="神奈川県横浜市西区みなとみらい2-2-1",
        industry="運輸業", employees=640, contact_name="小林 直子", contact_department="海外事業部",
        contact_phone="045-221-0099", contact_email="n.kobayashi@sakura-logi.co.jp", country="ID",
        base_name="PT SAKURA LOGISTICS INDONESIA", base_address="Jl. Sudirman Kav. 52, Jakarta, Indonesia",
        base_established="2019-07", investment_ratio=51, consultation_hours=0, training_hours=20,
    ),
    sample_values(
        submitted_on="2026-09-18", company_name="株式会社青空ソフト",
        corporate_number=corporate_number("290001011223"), representative_name="中村 翔",
        address="福岡県福岡市博多区博多駅前2-19-24", industry="ソフトウェア開発", employees=12,
        contact_name="中村 翔", contact_department="代表", contact_phone="092-471-5500",
        contact_email="sho@aozora-soft.jp", country="IN", base_kinds=["subsidiary", "rep_office"],
        base_name="AOZORA SOFT INDIA PVT. LTD.", base_address="Electronic City, Bengaluru, India",
        base_established="2022-11", investment_ratio=100, consultation_hours=4, training_hours=6,
        current_issues="ソースコードの持ち出し対策。",
    ),
)


@dataclass(frozen=True)
class Scan:
    """One corpus entry: who applied, how it was stamped, and how it was scanned."""

    name: str
    applicant: int
    seal: str = "red"
    seal_kind: str = "vector"
    dpi: int = 200
    angle: float = 0.0
    noise: float = 0.02
    jpeg_quality: int | None = None
    grayscale: bool = False

    @property
    def values(self) -> dict:
        """The values the form was filled with: what OCR must give back."""
        return APPLICANTS[self.applicant]

    def pdf(self) -> bytes:
        """The scanned PDF (image-only)."""
        form = render_application(self.values, seal=self.seal, seal_kind=self.seal_kind)
        return simulate_scan(form, dpi=self.dpi, angle=self.angle, noise=self.noise,
                             jpeg_quality=self.jpeg_quality, grayscale=self.grayscale,
                             seed=zlib.crc32(self.name.encode()))


SCANS: tuple[Scan, ...] = (
    Scan("300dpi-clean-red", 0, dpi=300, angle=0.4, noise=0.01),
    Scan("200dpi-jpeg70-red", 1, angle=-1.5, noise=0.04, jpeg_quality=70),
    Scan("150dpi-jpeg85-red", 2, dpi=150, angle=1.0, noise=0.03, jpeg_quality=85),
    Scan("200dpi-jpeg50-none", 3, angle=2.0, noise=0.05, jpeg_quality=50, seal="none"),
    Scan("300dpi-jpeg60-misplaced", 4, dpi=300, angle=-2.0, noise=0.03, jpeg_quality=60, seal="misplaced"),
    Scan("200dpi-jpeg75-black", 5, angle=0.8, jpeg_quality=75, seal="black"),
    Scan("150dpi-red-image", 0, dpi=150, angle=-0.7, noise=0.04, seal_kind="image"),
    Scan("300dpi-jpeg80-red-image", 3, dpi=300, angle=1.2, jpeg_quality=80, seal_kind="image"),
    Scan("200dpi-jpeg65-red", 4, angle=-1.0, noise=0.03, jpeg_quality=65),
    Scan("150dpi-jpeg55-misplaced-image", 5, dpi=150, angle=2.0, noise=0.05, jpeg_quality=55,
         seal="misplaced", seal_kind="image"),
    Scan("300dpi-black-image", 2, dpi=300, angle=-0.3, seal="black", seal_kind="image"),
    Scan("200dpi-gray-red", 1, angle=0.6, jpeg_quality=75, grayscale=True),
)

# What the seal check must conclude for each seal variant: (present, near_field, color).
SEAL_VERDICTS = {
    "red": (True, True, "red"),
    "none": (False, False, None),
    "misplaced": (True, False, "red"),
    "black": (True, True, "black"),
}
