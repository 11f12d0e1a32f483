"""Ward-level administrative procedures from the national procedure database (CSDLQG về TTHC).

Each entry: the national procedure code, its name, the ``tthc.Field`` it belongs to, the legal
processing time in working days (same-day procedures count as one working day, the way the
one-stop shops set the appointment when a dossier arrives after 15:00), a relative volume
weight (copies certified from originals and birth registrations dominate a ward's counter),
and whether supplement requests are frequent for it.

The list is in the order a ward typically puts procedures online, so "the first k procedures"
is a plausible set for a ward that offers k procedures online. Codes and names were checked
against published lists; processing times follow the published time limits and are rounded
to working days where the law counts calendar days.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.errors import NotFoundError


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    field: str
    days: int
    weight: float
    supplement_rate: float = 0.10


PROCEDURES: tuple[Procedure, ...] = (
    Procedure("1.001193", "Đăng ký khai sinh", "civil_status", 1, 14),
    Procedure("2.000635", "Cấp bản sao Trích lục hộ tịch", "civil_status", 1, 8, 0.03),
    Procedure("1.004873", "Cấp Giấy xác nhận tình trạng hôn nhân", "civil_status", 3, 9),
    Procedure("1.000656", "Đăng ký khai tử", "civil_status", 1, 4),
    Procedure("1.000894", "Đăng ký kết hôn", "civil_status", 1, 5),
    Procedure(
        "2.000815", "Chứng thực bản sao từ bản chính giấy tờ, văn bản", "justice", 1, 30, 0.01
    ),
    Procedure("2.000884", "Chứng thực chữ ký trong các giấy tờ, văn bản", "justice", 1, 10, 0.02),
    Procedure("1.001022", "Đăng ký nhận cha, mẹ, con", "civil_status", 3, 1.2, 0.2),
    Procedure(
        "1.000689", "Đăng ký khai sinh kết hợp nhận cha, mẹ, con", "civil_status", 3, 1.0, 0.2
    ),
    Procedure(
        "1.004859",
        "Thay đổi, cải chính, bổ sung thông tin hộ tịch",
        "civil_status",
        3,
        2.0,
        0.2,
    ),
    Procedure("1.004884", "Đăng ký lại khai sinh", "civil_status", 5, 1.0, 0.25),
    Procedure("1.004837", "Đăng ký giám hộ", "civil_status", 3, 0.3, 0.2),
    Procedure("1.003583", "Đăng ký khai sinh lưu động", "civil_status", 5, 0.2),
    Procedure("2.001019", "Chứng thực di chúc", "justice", 2, 0.8, 0.1),
    Procedure(
        "2.000913",
        "Chứng thực việc sửa đổi, bổ sung, hủy bỏ hợp đồng, giao dịch",
        "justice",
        2,
        0.6,
        0.1,
    ),
    Procedure("1.001612", "Đăng ký thành lập hộ kinh doanh", "business_registration", 3, 2.5, 0.2),
    Procedure(
        "2.000720",
        "Đăng ký thay đổi nội dung đăng ký hộ kinh doanh",
        "business_registration",
        3,
        1.5,
        0.15,
    ),
    Procedure(
        "1.001570", "Tạm ngừng hoạt động hộ kinh doanh", "business_registration", 3, 0.6, 0.05
    ),
    Procedure(
        "1.001266", "Chấm dứt hoạt động hộ kinh doanh", "business_registration", 3, 0.6, 0.05
    ),
    Procedure(
        "2.001023",
        "Liên thông các thủ tục hành chính về đăng ký khai sinh, cấp thẻ bảo hiểm y tế "
        "cho trẻ em dưới 6 tuổi",
        "health_insurance",
        15,
        2.0,
        0.15,
    ),
    Procedure(
        "1.001776",
        "Thực hiện, điều chỉnh, thôi hưởng trợ cấp xã hội hằng tháng",
        "labour_social",
        22,
        1.0,
        0.3,
    ),
    Procedure(
        "1.001699",
        "Xác định, xác định lại mức độ khuyết tật và cấp Giấy xác nhận khuyết tật",
        "labour_social",
        25,
        0.6,
        0.3,
    ),
    Procedure(
        "1.001731",
        "Hỗ trợ chi phí mai táng cho đối tượng bảo trợ xã hội",
        "labour_social",
        6,
        0.4,
        0.2,
    ),
    Procedure(
        "1.003702",
        "Hỗ trợ học tập đối với trẻ mẫu giáo, học sinh tiểu học, học sinh trung học cơ sở",
        "education",
        10,
        0.8,
        0.2,
    ),
    Procedure("1.012812", "Hòa giải tranh chấp đất đai", "land_construction", 30, 0.5, 0.35),
)

BY_CODE: dict[str, Procedure] = {p.code: p for p in PROCEDURES}


def procedure(code: str) -> Procedure:
    found = BY_CODE.get(code)
    if found is None:
        raise NotFoundError(
            f"procedure code {code!r} is not in the generator's list of ward procedures"
        )
    return found
