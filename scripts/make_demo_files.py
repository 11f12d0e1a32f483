"""Write the demo's connector and dataset files (examples/demo/); run after changing the list.

.venv/bin/python scripts/make_demo_files.py
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import yaml

from bus.units import load_hierarchy

OUT = Path(__file__).resolve().parent.parent / "examples" / "demo"
# Procedures each ward offers online. Tân Định (25) and Cầu Ông Lãnh (4) are the reported
# extremes; the others are illustrative values between them.
ONLINE = {
    "26734": 25,
    "26737": 18,
    "26740": 22,
    "26743": 20,
    "26746": 12,
    "26749": 15,
    "26752": 4,
    "26755": 9,
    "26758": 14,
    "26761": 7,
}


def slug(text: str) -> str:
    text = text.replace("Đ", "D").replace("đ", "d")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join(ascii_text.lower().split())


def main() -> None:
    h = load_hierarchy("hcmc-2024")
    (OUT / "connectors").mkdir(parents=True, exist_ok=True)
    (OUT / "datasets").mkdir(parents=True, exist_ok=True)
    for code, online in ONLINE.items():
        ward = h.get(code)
        name = slug(ward.name.removeprefix("Phường "))
        doc = {
            "name": f"ward-{code}-dossiers",
            "type": "sqlite",
            "role": "source",
            "agency": f"ubnd-phuong-{name}",
            "unit": code,
            "system": "mot-cua-dien-tu",
            "description": f"Hồ sơ một cửa của {ward.name} ({online} thủ tục trực tuyến)",
            "connection": {"url": f"sqlite:///${{LGSP_DEMO_DIR}}/ward-{code}.db"},
            "schedule": "*/10 * * * *",
            "tables": [
                {
                    "table": "ho_so",
                    "dataset": "tthc.dossier",
                    "mode": "incremental",
                    "cursor": "updated_at",
                }
            ],
        }
        text = f"# {ward.name}: its one-stop-shop dossier database (demo, SQLite)\n"
        text += yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        (OUT / "connectors" / f"ward-{code}.yaml").write_text(text, encoding="utf-8")
    for unit, label, who in (
        ("760", "District 1's", "ubnd-quan-1"),
        ("79", "the city's", "vp-ubnd-tp"),
    ):
        doc = {
            "name": f"sink-{unit}-dossiers",
            "type": "sqlite",
            "role": "sink",
            "agency": who,
            "unit": unit,
            "description": f"{label} consolidated copy of the wards' dossiers",
            "connection": {"url": f"sqlite:///${{LGSP_DEMO_DIR}}/unit-{unit}.db"},
            "schedule": "*/10 * * * *",
            "tables": [{"table": "ho_so", "dataset": "tthc.dossier", "on_delete": "mark"}],
        }
        text = f"# {label} dossier database, fed from the {unit} topic (demo, SQLite)\n"
        text += yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        (OUT / "connectors" / f"sink-{unit}.yaml").write_text(text, encoding="utf-8")
    dataset = {
        "name": "tthc.dossier",
        "publisher": "vp-ubnd-tp",
        "publisher_display": "Văn phòng Ủy ban nhân dân Thành phố Hồ Chí Minh",
        "units": list(ONLINE),
        "schema": "schemas/tthc.Dossier.avsc",
        "key": ["dossier_id"],
        "pii": ["applicant_citizen_id", "applicant_name"],
        "description": {
            "vi": "Hồ sơ thủ tục hành chính tiếp nhận tại 10 phường Quận 1",
            "en": "Administrative-procedure dossiers received by District 1's 10 wards",
        },
        "legal_basis": "Nghị định 61/2018/NĐ-CP; Nghị định 107/2021/NĐ-CP",
        "frequency": "continuous",
    }
    text = "# The demo's dossier dataset: District 1's ten wards publish, the city office owns it\n"
    text += yaml.safe_dump(dataset, allow_unicode=True, sort_keys=False)
    (OUT / "datasets" / "tthc.dossier.yaml").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
