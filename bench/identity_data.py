"""CRM-like contacts for the identity benchmark: Russian and Polish people, ~10% duplicate rows
with the noise real CRMs carry (three transliterations, diminutives, word order, case, typos,
eight phone formats, changed numbers, company switchboards and info@ mailboxes, namesakes)."""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST_M = [
    "Александр",
    "Алексей",
    "Андрей",
    "Антон",
    "Артём",
    "Борис",
    "Вадим",
    "Василий",
    "Виктор",
    "Владимир",
    "Вячеслав",
    "Геннадий",
    "Георгий",
    "Григорий",
    "Денис",
    "Дмитрий",
    "Евгений",
    "Егор",
    "Иван",
    "Игорь",
    "Илья",
    "Кирилл",
    "Константин",
    "Максим",
    "Михаил",
    "Никита",
    "Николай",
    "Олег",
    "Павел",
    "Пётр",
    "Роман",
    "Руслан",
    "Сергей",
    "Станислав",
    "Степан",
    "Тимур",
    "Фёдор",
    "Юрий",
    "Ярослав",
]
FIRST_F = [
    "Александра",
    "Алёна",
    "Алина",
    "Анастасия",
    "Анна",
    "Валентина",
    "Валерия",
    "Вера",
    "Виктория",
    "Галина",
    "Дарья",
    "Евгения",
    "Екатерина",
    "Елена",
    "Елизавета",
    "Жанна",
    "Ирина",
    "Ксения",
    "Лариса",
    "Людмила",
    "Маргарита",
    "Марина",
    "Мария",
    "Надежда",
    "Наталья",
    "Оксана",
    "Ольга",
    "Полина",
    "Светлана",
    "София",
    "Татьяна",
    "Юлия",
]
DIMINUTIVE = {
    "Александр": "Саша", "Алексей": "Лёша", "Дмитрий": "Дима", "Евгений": "Женя", "Михаил": "Миша",
    "Николай": "Коля", "Владимир": "Вова", "Сергей": "Серёжа", "Павел": "Паша", "Иван": "Ваня",
    "Екатерина": "Катя", "Елена": "Лена", "Мария": "Маша", "Наталья": "Наташа", "Ольга": "Оля",
    "Татьяна": "Таня", "Юлия": "Юля", "Анастасия": "Настя", "Анна": "Аня", "Светлана": "Света",
    "Ирина": "Ира", "Дарья": "Даша", "Ксения": "Ксюша", "Константин": "Костя", "Юрий": "Юра",
}  # fmt: skip
SURNAME_ROOTS = [
    "Иван",
    "Смирн",
    "Кузнец",
    "Поп",
    "Васил",
    "Петр",
    "Соколо",
    "Михайл",
    "Новик",
    "Фёдор",
    "Морозо",
    "Волко",
    "Алексе",
    "Лебед",
    "Семён",
    "Егор",
    "Павл",
    "Козл",
    "Степан",
    "Никола",
    "Орл",
    "Андре",
    "Макар",
    "Никит",
    "Захар",
    "Зайц",
    "Солов",
    "Борис",
    "Яковл",
    "Григорь",
    "Роман",
    "Воробь",
    "Серге",
    "Кузьмин",
    "Фрол",
    "Александр",
    "Дмитри",
    "Корол",
    "Гусе",
    "Кисел",
    "Ильин",
    "Максим",
    "Поляк",
    "Сорокин",
    "Виноград",
    "Ковал",
    "Белоус",
    "Медвед",
    "Антон",
    "Тарас",
    "Жук",
    "Баран",
    "Филипп",
    "Комар",
    "Давыд",
    "Беляк",
    "Герасим",
    "Богдан",
    "Осип",
    "Сидор",
    "Матве",
    "Титов",
    "Марк",
    "Миронов",
    "Крыл",
    "Кулик",
    "Карп",
    "Власов",
    "Мельник",
    "Денис",
    "Гаврил",
    "Тихон",
    "Казак",
    "Афанась",
    "Данил",
    "Савель",
    "Тимоф",
    "Фомин",
    "Чернов",
    "Абрам",
    "Мартын",
    "Ефим",
    "Федот",
    "Щерб",
    "Назар",
    "Калин",
    "Исаев",
    "Чернышё",
    "Быков",
    "Маслов",
    "Родион",
    "Коновал",
    "Лазар",
    "Воронин",
    "Климов",
    "Филат",
    "Пономар",
    "Голуб",
    "Кудрявц",
    "Прохор",
    "Наум",
    "Потап",
    "Журавл",
    "Овчинник",
    "Трофим",
    "Леонов",
    "Соболе",
    "Ермак",
    "Колесник",
    "Гончар",
    "Емельян",
    "Никифор",
    "Грачё",
    "Котов",
    "Гриш",
    "Ефрем",
    "Архип",
    "Громов",
    "Кирилл",
    "Малыш",
    "Панов",
    "Моисе",
    "Румянц",
    "Акимов",
    "Кондрат",
    "Бирюк",
    "Горбун",
    "Аним",
    "Елисе",
    "Суханов",
    "Рыбак",
    "Шестак",
    "Третьяк",
    "Лукин",
    "Суворов",
    "Щукин",
    "Хохлов",
]
SURNAME_SUFFIXES = ["ов", "ев", "ин", "енко", "ский", "цев", "ёнок"]
PL_FIRST = [
    "Jan",
    "Piotr",
    "Krzysztof",
    "Tomasz",
    "Paweł",
    "Michał",
    "Marcin",
    "Łukasz",
    "Adam",
    "Jakub",
    "Anna",
    "Katarzyna",
    "Małgorzata",
    "Agnieszka",
    "Ewa",
    "Joanna",
    "Magdalena",
    "Monika",
    "Zofia",
    "Aleksandra",
]
PL_LAST = [
    "Nowak",
    "Kowalski",
    "Wiśniewski",
    "Wójcik",
    "Kamiński",
    "Lewandowski",
    "Zieliński",
    "Szymański",
    "Woźniak",
    "Dąbrowski",
    "Kozłowski",
    "Jankowski",
    "Mazur",
    "Kwiatkowski",
    "Krawczyk",
    "Piotrowski",
    "Grabowski",
    "Nowakowski",
    "Pawłowski",
    "Michalski",
]
COMPANY_WORDS = [
    "Строй",
    "Техно",
    "Агро",
    "Мед",
    "Пром",
    "Транс",
    "Энерго",
    "Газ",
    "Нефть",
    "Лес",
    "Металл",
    "Сиб",
    "Урал",
    "Волга",
    "Балт",
    "Север",
    "Юг",
    "Восток",
    "Запад",
    "Снаб",
    "Торг",
    "Сервис",
    "Логистик",
    "Маркет",
    "Инвест",
    "Проект",
    "Систем",
    "Комплекс",
    "Ресурс",
    "Альфа",
    "Бета",
    "Гамма",
    "Дельта",
    "Вектор",
    "Орбита",
    "Стандарт",
    "Прайм",
    "Гранит",
    "Кедр",
    "Рубин",
    "Сапфир",
    "Феникс",
    "Атлант",
    "Титан",
    "Импульс",
    "Квант",
]
COMPANY_TAILS = ["", " Плюс", " Групп", "-М", " Трейд", " Холдинг", "-Центр", " Капитал", " Лайн"]
LEGAL_RU = [("ООО «{}»", "{} LLC"), ("АО «{}»", "{} JSC"), ("ПАО «{}»", "{} PJSC"), ("ООО {}", "OOO {}")]
CITIES = [
    "Москва",
    "Санкт-Петербург",
    "Новосибирск",
    "Екатеринбург",
    "Казань",
    "Нижний_Новгород",
    "Челябинск",
    "Самара",
    "Омск",
    "Ростов-на-Дону",
    "Уфа",
    "Красноярск",
    "Воронеж",
    "Пермь",
    "Волгоград",
    "Краснодар",
    "Тюмень",
    "Иркутск",
]
PROVIDERS = ["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "list.ru", "rambler.ru"]

_BASE = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z", "и": "i", "к": "k",
    "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f",
    "ш": "sh", "ъ": "", "ь": "", "ы": "y", "э": "e",
}  # fmt: skip
# Three transliterations people actually use: passport (ICAO), BGN-like, and informal.
SCHEMES = [
    {**_BASE, "ё": "e", "й": "i", "х": "kh", "ц": "ts", "ч": "ch", "щ": "shch", "ю": "iu", "я": "ia"},
    {**_BASE, "ё": "yo", "й": "y", "х": "kh", "ц": "ts", "ч": "ch", "щ": "shch", "ю": "yu", "я": "ya"},
    {**_BASE, "ё": "e", "й": "j", "х": "h", "ц": "c", "ч": "ch", "щ": "sch", "ю": "ju", "я": "ja", "ж": "j"},
]


def translit(text: str, scheme: int) -> str:
    table = SCHEMES[scheme]
    out = []
    for ch in text:
        low = ch.lower()
        if low in table:
            rendered = table[low]
            out.append(rendered.capitalize() if ch != low else rendered)
        else:
            out.append(ch)
    return "".join(out)


def surnames(rng: random.Random, count: int = 900) -> list[str]:
    pool = sorted({root + suffix for root in SURNAME_ROOTS for suffix in SURNAME_SUFFIXES})
    rng.shuffle(pool)
    return pool[:count]


def feminine(surname: str) -> str:
    if surname.endswith(("ов", "ев", "ин", "ёв", "цев")):
        return surname + "а"
    if surname.endswith("ский"):
        return surname[:-2] + "ая"
    return surname


def phone_formats(e164: str, rng: random.Random) -> str:
    """One of the eight ways the same Russian number is typed."""
    d = e164[2:]
    forms = [
        f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
        f"8{d}",
        f"8 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
        f"+7{d}",
        f"7-{d[:3]}-{d[3:6]}-{d[6:8]}-{d[8:]}",
        f"({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
        f"8({d[:3]}){d[3:]}",
        f"+7 {d[:3]} {d[3:6]} {d[6:]}",
    ]
    return rng.choice(forms)


def typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.33:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind < 0.66:
        return word[:i] + word[i + 1 :]
    return word[:i] + rng.choice("аеиоуклмнстaeioklmnst") + word[i + 1 :]


@dataclass
class Person:
    first: str
    last: str
    patronymic: str | None
    polish: bool
    phone: str | None  # E.164 of the person's own number, or the switchboard
    extension: str | None
    email: str | None
    company: int | None
    city: str


@dataclass
class Company:
    name: str  # base name without legal form
    legal: int
    switchboard: str
    domain: str


# Mobile prefixes in service (libphonenumber accepts them): random digits after them.
MOBILE_PREFIXES = [
    "903",
    "905",
    "906",
    "909",
    "910",
    "911",
    "912",
    "913",
    "914",
    "915",
    "916",
    "917",
    "918",
    "919",
    "920",
    "921",
    "922",
    "925",
    "926",
    "927",
    "928",
    "929",
    "950",
    "951",
    "952",
    "953",
    "960",
    "961",
    "962",
    "963",
    "964",
    "965",
    "966",
    "967",
    "968",
    "977",
    "978",
    "980",
    "981",
    "982",
    "983",
    "984",
    "985",
    "987",
    "988",
    "989",
    "999",
]


def _mobile(rng: random.Random, used: set[str]) -> str:
    while True:
        number = f"+7{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**7):07d}"
        if number not in used:
            used.add(number)
            return number


def make_companies(rng: random.Random, count: int, used: set[str]) -> list[Company]:
    companies = []
    for n in range(count):
        name = rng.choice(COMPANY_WORDS) + rng.choice(COMPANY_WORDS).lower() + rng.choice(COMPANY_TAILS)
        switchboard = f"+7{rng.choice(['495', '499', '812', '343', '383'])}{rng.randrange(10**7):07d}"
        used.add(switchboard)
        domain = translit(name.replace(" ", "").replace("-", "").lower(), 1) + f"{n % 97}.ru"
        companies.append(Company(name, rng.randrange(len(LEGAL_RU)), switchboard, domain))
    return companies


def make_person(
    rng: random.Random, last_names: list[str], companies: list[Company], used: set[str]
) -> Person:
    polish = rng.random() < 0.08
    female = rng.random() < 0.5
    if polish:
        first = rng.choice(PL_FIRST)
        last = rng.choice(PL_LAST)
        patronymic = None
    else:
        first = rng.choice(FIRST_F if female else FIRST_M)
        base = rng.choice(last_names)
        last = feminine(base) if female else base
        father = rng.choice(FIRST_M)
        patronymic = father + ("овна" if female else "ович") if rng.random() < 0.5 else None
    company = rng.randrange(len(companies)) if rng.random() < 0.35 else None
    phone, extension, email = _mobile(rng, used), None, None
    if company is not None and rng.random() < 0.4:
        phone = companies[company].switchboard
        extension = str(rng.randrange(100, 999)) if rng.random() < 0.5 else None
    if rng.random() < 0.65:
        local_first = translit(first.lower(), 1)
        local_last = translit(last.lower(), 1)
        local = rng.choice(
            [
                f"{local_first}.{local_last}",
                f"{local_first[0]}.{local_last}",
                f"{local_last}{rng.randrange(100)}",
            ]
        )
        if company is not None and rng.random() < 0.5:
            email = (
                "info@" + companies[company].domain
                if rng.random() < 0.3
                else f"{local}@{companies[company].domain}"
            )
        else:
            email = f"{local}@{rng.choice(PROVIDERS)}"
        # A personal address belongs to one person: a taken one gets digits, as providers do.
        while email in used and not email.startswith("info@"):
            name, _, domain = email.partition("@")
            email = f"{name}{rng.randrange(10, 10000)}@{domain}"
        used.add(email)
    return Person(first, last, patronymic, polish, phone, extension, email, company, rng.choice(CITIES))


def render(person: Person, companies: list[Company], rng: random.Random, noisy: bool) -> dict[str, str]:
    """One CRM row of the person; a duplicate row (`noisy`) carries the typical noise."""
    first, last, patronymic = person.first, person.last, person.patronymic
    if noisy and not person.polish and first in DIMINUTIVE and rng.random() < 0.15:
        first = DIMINUTIVE[first]
    if noisy and rng.random() < 0.2:
        if rng.random() < 0.5:
            last = typo(last, rng)
        else:
            first = typo(first, rng)
    if noisy and rng.random() < 0.5:
        patronymic = None
    words = [last, first] + ([patronymic] if patronymic else [])
    if noisy and rng.random() < 0.5:
        words = [first, last] + ([patronymic] if patronymic else [])
    name = " ".join(words)
    if not person.polish and noisy and rng.random() < 0.55:
        name = translit(name, rng.randrange(3))
    elif person.polish and noisy and rng.random() < 0.4:
        name = name.translate(str.maketrans("łąćęńóśźżŁŚŻ", "lacenoszzLSZ"))
    roll = rng.random()
    if noisy and roll < 0.08:
        name = name.upper()
    elif noisy and roll < 0.14:
        name = name.lower()
    phone = ""
    if person.phone:
        if not noisy or rng.random() < 0.7:
            phone = phone_formats(person.phone, rng)
            if person.extension:
                phone += f" доб. {person.extension}"
        elif rng.random() < 0.5:
            phone = phone_formats(_mobile(rng, set()), rng)  # a new number since
    email = ""
    if person.email and (not noisy or rng.random() < 0.55):
        email = person.email.upper() if noisy and rng.random() < 0.1 else person.email
    company = ""
    if person.company is not None and (not noisy or rng.random() < 0.6):
        c = companies[person.company]
        ru_form, en_form = LEGAL_RU[c.legal]
        company = (
            en_form.format(translit(c.name, 1)) if noisy and rng.random() < 0.3 else ru_form.format(c.name)
        )
    city = person.city.replace("_", " ") if not noisy or rng.random() < 0.7 else ""
    return {"name": name, "phone": phone, "email": email, "company": company, "city": city}


def generate(
    rows: int, seed: int = 7, duplicate_share: float = 0.10, newcomers: int = 0
) -> tuple[list[dict[str, str]], list[int], list[dict[str, str]]]:
    """`rows` contact rows with, for each, the id of the real person behind it; and `newcomers`
    rows of further people who are not among them (same companies, phones and addresses kept
    unique across both, as in one real market)."""
    rng = random.Random(seed)
    used: set[str] = set()
    last_names = surnames(rng)
    companies = make_companies(rng, max(10, rows // 40), used)
    people_count = max(1, round(rows * (1 - duplicate_share)))
    persons = [make_person(rng, last_names, companies, used) for _ in range(people_count)]
    out: list[tuple[dict[str, str], int]] = [
        (render(p, companies, rng, False), i) for i, p in enumerate(persons)
    ]
    for _ in range(rows - people_count):
        # Some people are entered three or four times: pick among the ones already duplicated.
        i = rng.randrange(people_count) if rng.random() < 0.85 or len(out) == people_count else out[-1][1]
        out.append((render(persons[i], companies, rng, True), i))
    rng.shuffle(out)
    new_rows = [
        render(make_person(rng, last_names, companies, used), companies, rng, False) for _ in range(newcomers)
    ]
    return [row for row, _ in out], [truth for _, truth in out], new_rows
