"""Names, companies and phone numbers that look like the Russian and Polish sales companies the
hub is for. Deterministic for a given random generator."""

from __future__ import annotations

import random

RU_FIRST_M = ["Иван", "Алексей", "Дмитрий", "Сергей", "Андрей", "Михаил", "Николай", "Павел", "Артём", "Егор"]
RU_FIRST_F = ["Анна", "Елена", "Ольга", "Мария", "Наталья", "Татьяна", "Ирина", "Юлия", "Дарья", "Алёна"]
RU_LAST = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Соколов",
    "Лебедев",
    "Козлов",
    "Новиков",
    "Морозов",
    "Петров",
    "Волков",
    "Соловьёв",
    "Васильев",
    "Зайцев",
    "Павлов",
    "Семёнов",
    "Голубев",
    "Виноградов",
]
RU_PATRONYMIC_M = ["Иванович", "Петрович", "Сергеевич", "Алексеевич", "Дмитриевич", "Андреевич"]
RU_PATRONYMIC_F = ["Ивановна", "Петровна", "Сергеевна", "Алексеевна", "Дмитриевна", "Андреевна"]
PL_FIRST = [
    "Jan",
    "Piotr",
    "Krzysztof",
    "Tomasz",
    "Paweł",
    "Anna",
    "Katarzyna",
    "Małgorzata",
    "Agnieszka",
    "Ewa",
]
PL_LAST = ["Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński", "Szymański"]
RU_COMPANIES = [
    "ООО «СтройМаркет»",
    "ООО «ТехноСнаб»",
    "АО «Уральские Системы»",
    "ИП Кравцов А.В.",
    "ООО «Северный Логистик»",
    "ООО «Агроресурс»",
    "ПАО «Волгаэнерго»",
    "ООО «МедТех Плюс»",
    "ООО «Ромашка»",
    "ООО «Балтийская Упаковка»",
    "АО «Сибирский Металл»",
    "ООО «ПромАвтоматика»",
]
PL_COMPANIES = ["Budmax sp. z o.o.", "Techpol S.A.", "Logistyka Wisła sp. z o.o.", "Agro-Farm sp. j."]
RU_CITIES = ["Москва", "Санкт-Петербург", "Екатеринбург", "Новосибирск", "Казань", "Нижний Новгород"]
PL_CITIES = ["Warszawa", "Kraków", "Wrocław", "Poznań", "Gdańsk"]


def ru_person(rng: random.Random) -> tuple[str, str]:
    """(full name, gender) such as "Смирнова Ольга Петровна"."""
    if rng.random() < 0.5:
        return f"{rng.choice(RU_LAST)} {rng.choice(RU_FIRST_M)} {rng.choice(RU_PATRONYMIC_M)}", "m"
    last = rng.choice(RU_LAST)
    last = last + "а" if last.endswith(("в", "н")) else last  # feminine surname
    return f"{last} {rng.choice(RU_FIRST_F)} {rng.choice(RU_PATRONYMIC_F)}", "f"


def pl_person(rng: random.Random) -> str:
    return f"{rng.choice(PL_FIRST)} {rng.choice(PL_LAST)}"


def ru_mobile(rng: random.Random) -> str:
    return f"+79{rng.randint(0, 99):02d}{rng.randint(0, 9999999):07d}"


def pl_mobile(rng: random.Random) -> str:
    return f"+48{rng.choice('5678')}{rng.randint(0, 99999999):08d}"


def as_typed(e164: str, rng: random.Random) -> str:
    """The same number the way people type it in a form."""
    if e164.startswith("+7"):
        d = e164[2:]
        return rng.choice(
            [
                f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
                f"8{d}",
                f"8 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
                f"+7{d}",
                f"7-{d[:3]}-{d[3:6]}-{d[6:]}",
            ]
        )
    d = e164[3:]
    return rng.choice([f"+48 {d[:3]} {d[3:6]} {d[6:]}", d, f"0048{d}", f"+48{d}"])


def translit_email(name: str, rng: random.Random, domain: str) -> str:
    table = str.maketrans(
        {
            "а": "a",
            "б": "b",
            "в": "v",
            "г": "g",
            "д": "d",
            "е": "e",
            "ё": "e",
            "ж": "zh",
            "з": "z",
            "и": "i",
            "й": "y",
            "к": "k",
            "л": "l",
            "м": "m",
            "н": "n",
            "о": "o",
            "п": "p",
            "р": "r",
            "с": "s",
            "т": "t",
            "у": "u",
            "ф": "f",
            "х": "kh",
            "ц": "ts",
            "ч": "ch",
            "ш": "sh",
            "щ": "sch",
            "ъ": "",
            "ы": "y",
            "ь": "",
            "э": "e",
            "ю": "yu",
            "я": "ya",
            "ł": "l",
            "ś": "s",
            "ń": "n",
            "ó": "o",
            "ż": "z",
            "ź": "z",
            "ą": "a",
            "ę": "e",
            "ć": "c",
        }
    )
    parts = name.lower().translate(table).split()
    local = f"{parts[1][0]}.{parts[0]}" if len(parts) > 1 else parts[0]
    return f"{local}{rng.randint(1, 99) if rng.random() < 0.3 else ''}@{domain}"
