"""Normalization of phones, emails, names, companies and tax ids as people type them."""

from __future__ import annotations

import pytest

from hub.identity.normalize import (
    company_key,
    is_role_email,
    is_valid_inn,
    is_valid_nip,
    name_key,
    name_parts,
    normalize_email,
    normalize_phone,
    normalize_tax_id,
)


@pytest.mark.parametrize(
    "typed",
    [
        "+7 (999) 123-45-67",
        "89991234567",
        "8 999 123 45 67",
        "+79991234567",
        "7-999-123-45-67",
        "(999) 123-45-67",
        "8(999)1234567",
        "+7 999 123 4567",
    ],
)
def test_russian_phone_formats_give_one_e164(typed: str) -> None:
    phone = normalize_phone(typed, "RU")
    assert phone is not None and phone.e164 == "+79991234567" and phone.extension is None


@pytest.mark.parametrize(
    ("typed", "extension"),
    [("8 (495) 123-45-67 доб. 123", "123"), ("+7 495 123 45 67 ext. 9", "9"), ("+74951234567 x42", "42")],
)
def test_extension_goes_to_its_own_field(typed: str, extension: str) -> None:
    phone = normalize_phone(typed, "RU")
    assert phone is not None and phone.e164 == "+74951234567" and phone.extension == extension


def test_default_region_decides_numbers_without_country_code() -> None:
    assert normalize_phone("601 234 567", "PL").e164 == "+48601234567"  # type: ignore[union-attr]
    assert normalize_phone("601 234 567", "RU") is None
    assert normalize_phone("+48 601 234 567", "RU").e164 == "+48601234567"  # type: ignore[union-attr]


@pytest.mark.parametrize("junk", ["", "   ", "12345", "+7 (000) 000-00-00", "phone", None])
def test_invalid_phones_are_none(junk: str | None) -> None:
    assert normalize_phone(junk, "RU") is None


def test_email_junk_case_and_provider_aliases() -> None:
    assert normalize_email(" <Ivan.Petrov@Mail.RU>; ") == "ivan.petrov@mail.ru"
    assert normalize_email("mailto:Ivan@Example.com") == "ivan@example.com"
    # Gmail dots and +tags are kept unless the admin asks to fold them.
    assert normalize_email("Ivan.Petrov+crm@gmail.com") == "ivan.petrov+crm@gmail.com"
    assert normalize_email("Ivan.Petrov+crm@gmail.com", fold_provider_aliases=True) == "ivanpetrov@gmail.com"
    assert normalize_email("Ivan.Petrov@mail.ru", fold_provider_aliases=True) == "ivan.petrov@mail.ru"
    assert normalize_email("not an email") is None


def test_role_mailboxes() -> None:
    assert is_role_email("info@romashka.ru") and is_role_email("sales+web@romashka.ru")
    assert is_role_email("biuro@budmax.pl")
    assert not is_role_email("ivan.petrov@romashka.ru")


@pytest.mark.parametrize(
    "variant",
    [
        "Иванов Иван Иванович",
        "ИВАНОВ иван",
        "Ivanov Ivan",
        "Ivan Ivanov",
        "ivan IVANOV",
        "Иван Иванов",
        "Ivanov, Ivan Ivanovich",
        "Ваня Иванов",
    ],
)
def test_name_variants_share_one_key(variant: str) -> None:
    assert name_key(variant) == name_key("Иванов Иван")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Алёна Соловьёва", "Alyona Solovyova"),
        ("Алена Соловьева", "Aliona Soloveva"),
        ("Юлия Кузнецова", "Yulia Kuznetsova"),
        ("Юлия Кузнецова", "Julia Kuznecova"),
        ("Алексей Щукин", "Aleksei Shchukin"),
        ("Алексей Щукин", "Alexey Schukin"),
        ("Артём Хохлов", "Artyom Khokhlov"),
        ("Małgorzata Wiśniewska", "Malgorzata Wisniewska"),
    ],
)
def test_transliterations_and_yo_fold_together(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


def test_patronymic_is_kept_apart_but_a_two_word_surname_in_vich_is_not() -> None:
    parts = name_parts("Петров Сергей Алексеевич")
    assert parts.tokens == ("petrov", "sergei") and parts.patronymic == "aleksevic"
    assert name_parts("Абрамович Роман").tokens == ("abramovic", "roman")
    assert name_parts("Ivan I. Ivanov").initials == ("i",)


@pytest.mark.parametrize(
    "variant",
    ["ООО «Ромашка»", "Romashka LLC", '"РОМАШКА" ООО', "Общество с ограниченной ответственностью Ромашка"],
)
def test_company_legal_forms_are_stripped(variant: str) -> None:
    assert company_key(variant) == "romaska"


def test_polish_legal_forms() -> None:
    assert company_key("Budmax sp. z o.o.") == company_key("BUDMAX") == company_key("Budmax S.A.")


def test_inn_and_nip_checksums() -> None:
    assert is_valid_inn("7707083893")  # Sberbank, organisation
    assert not is_valid_inn("7707083894")
    assert is_valid_inn("500100732259")  # a person
    assert not is_valid_inn("500100732258")
    assert is_valid_nip("5260250995")
    assert not is_valid_nip("5260250996")
    person = normalize_tax_id("ИНН 500100732259")
    assert person is not None and person.kind == "inn_person" and person.identifies_person
    org = normalize_tax_id("7707083893")
    assert org is not None and org.kind == "inn_org" and not org.identifies_person
    assert normalize_tax_id("PL 526-025-09-95").kind == "nip"  # type: ignore[union-attr]
    assert normalize_tax_id("1234567890") is None
