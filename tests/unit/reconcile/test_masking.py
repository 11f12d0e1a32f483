"""Which column names count as personal data when no dataset says so."""

from __future__ import annotations

import pytest

from bus.reconcile.report import MASK, Masker, looks_personal, normalise_name


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("Họ Tên", "ho_ten"),
        ("SoDienThoai", "so_dien_thoai"),
        ("CCCD", "cccd"),
        ("địa chỉ-thường trú", "dia_chi_thuong_tru"),
        ("ĐỊA_CHỈ", "dia_chi"),
        ("__ngàySinh__", "ngay_sinh"),
    ],
)
def test_normalise_name(name: str, normal: str) -> None:
    assert normalise_name(name) == normal


@pytest.mark.parametrize(
    "name",
    [
        "cccd",
        "so_cccd",
        "CMND",
        "citizen_id",
        "CitizenId",
        "số định danh",
        "phone",
        "mobile_phone",
        "so_dien_thoai",
        "sodienthoai",
        "full_name",
        "FullName",
        "ho_ten",
        "hoten",
        "HoTenNguoiNop",
        "address",
        "email_address",
        "dia_chi_thuong_tru",
        "diachi",
        "birth_date",
        "Ngày sinh",
        "ngaysinh",
    ],
)
def test_personal_names(name: str) -> None:
    assert looks_personal(name)


@pytest.mark.parametrize(
    "name",
    ["id", "ma_ho_so", "so_tien", "ngay_nop", "ghi_chu", "phonetic", "hotel", "cccd2", "ten_xa"],
)
def test_other_names(name: str) -> None:
    assert not looks_personal(name)


def test_masker_guesses_only_when_asked() -> None:
    assert Masker().value("ho_ten", "Lê Văn A") == "Lê Văn A"
    guessing = Masker(["Ghi chú"], guess=True)
    assert guessing.value("ho_ten", "Lê Văn A") == MASK
    assert guessing.value("ghi_chu", "bí mật") == MASK  # named PII, compared without accents
    assert guessing.value("ma_ho_so", "HS-1") == "HS-1"
    assert guessing.value("ho_ten", None) is None
    assert guessing.key("SoCCCD", "079212345678") == MASK
