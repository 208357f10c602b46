"""Normalization of everything contacts are matched on: phones (E.164 + extension), emails,
names (ё/е, Cyrillic/Latin folding, patronymics, word order, diminutives), companies and tax ids."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from schemas.accounting import normalize_inn

_EXTENSION = re.compile(r"(?:доб\.?|доп\.?|вн\.?|ext\.?|wew\.?|x)\s*(\d{1,6})\s*$", re.IGNORECASE)
# Characters people put around phone digits; anything else goes to the full parser.
_PHONE_FORMATTING = re.compile(r"[\s().\-]")


@dataclass(frozen=True)
class Phone:
    e164: str
    extension: str | None = None


@lru_cache(maxsize=64)
def _country_code(region: str) -> int:
    return phonenumbers.country_code_for_region(region)


def _fast_national(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """The common shapes ("+7 (999) 123-45-67", "89991234567", "9991234567") without the full
    parser, which costs twice as much: the validity check below is the same."""
    compact = _PHONE_FORMATTING.sub("", text)
    plus = compact.startswith("+")
    digits = compact[1:] if plus else compact
    if not digits.isdigit():
        return None
    cc = _country_code(region)
    prefix = str(cc)
    if plus:
        if not digits.startswith(prefix):
            return None
        national = digits[len(prefix) :]
    elif cc == 7 and len(digits) == 11 and digits[0] in "78":
        # Russian trunk prefix 8 (or 7 written without +): 8XXXXXXXXXX.
        national = digits[1:]
    elif len(digits) in (9, 10) and not digits.startswith("0"):
        national = digits
    else:
        return None
    if not national or national.startswith("0"):
        return None
    return phonenumbers.PhoneNumber(country_code=cc, national_number=int(national))


def normalize_phone(raw: str | None, default_region: str = "RU") -> Phone | None:
    """E.164 form of a phone as people type it ("8 (999) 123-45-67 доб. 12"), the extension
    in its own field; None when it is not a valid number."""
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    extension = None
    match = _EXTENSION.search(text)
    if match:
        extension = match.group(1)
        text = text[: match.start()].strip(" ,;")
    number = _fast_national(text, default_region)
    if number is None:
        number = _parse_phone(text, default_region)
        if number is None:
            return None
    elif not phonenumbers.is_valid_number(number):
        return None  # the full parser reads these shapes the same way: no second opinion
    if number.extension and not extension:
        extension = number.extension
    return Phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), extension)


def _parse_phone(text: str, default_region: str) -> phonenumbers.PhoneNumber | None:
    digits = re.sub(r"\D", "", text)
    if default_region == "RU" and len(digits) == 11 and digits.startswith("8") and not text.startswith("+"):
        text = "+7" + digits[1:]
    elif (
        len(digits) == 11
        and digits.startswith("7")
        and not text.startswith("+")
        and default_region in ("RU", "KZ")
    ):
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


# ---------------------------------------------------------------- emails

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+$"
)
# Providers that ignore dots and "+tag" in the local part.
_DOT_BLIND_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
# Mailboxes of a function, not a person: shared by everyone at a company.
ROLE_LOCAL_PARTS = frozenset(
    [
        "info",
        "office",
        "sales",
        "admin",
        "administrator",
        "support",
        "help",
        "hello",
        "contact",
        "contacts",
        "mail",
        "post",
        "zakaz",
        "order",
        "orders",
        "manager",
        "managers",
        "reception",
        "secretary",
        "buh",
        "bookkeeping",
        "accounting",
        "noreply",
        "no-reply",
        "marketing",
        "hr",
        "team",
        "biuro",
        "kontakt",
        "sekretariat",
        "zamowienia",
        "sklep",
        "shop",
        "company",
        "general",
        "enquiries",
        "inquiries",
        "service",
    ]
)


def normalize_email(raw: str | None, fold_provider_aliases: bool = False) -> str | None:
    """Lower-cased address without surrounding junk ("<Ivan@Mail.RU>", "mailto:"); None if it
    is not an address. With `fold_provider_aliases`, Gmail's dots and +tags are dropped."""
    if not raw:
        return None
    text = raw.strip().strip("<>\"' ,;").removeprefix("mailto:").removeprefix("MAILTO:").strip()
    text = text.lower()
    if len(text) > 254 or not _EMAIL.match(text):
        return None
    if fold_provider_aliases:
        local, _, domain = text.partition("@")
        if domain in _DOT_BLIND_DOMAINS:
            local = local.split("+", 1)[0].replace(".", "")
            text = f"{local}@{_DOT_BLIND_DOMAINS[domain]}"
    return text


def is_role_email(email: str | None) -> bool:
    """info@, sales@, office@...: a company's shared mailbox, never proof of one person."""
    if not email:
        return False
    local = email.partition("@")[0]
    return local in ROLE_LOCAL_PARTS or local.split("+", 1)[0] in ROLE_LOCAL_PARTS


# ---------------------------------------------------------------- names

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    "і": "i", "ї": "i", "є": "e", "ґ": "g", "ł": "l", "ß": "ss", "æ": "ae", "ø": "o",
}  # fmt: skip
_TRANSLIT = str.maketrans(_CYRILLIC)

# Folding of the several transliterations of one Russian name ("Aleksey", "Alexei",
# "Aleksei", "Alexey") to one spelling; applied to Latin text only, longest groups first.
_FOLDS = [
    ("shch", "s"), ("sch", "s"), ("shh", "s"), ("tch", "c"), ("sh", "s"), ("ch", "c"),
    ("kh", "h"), ("zh", "z"), ("tz", "c"), ("ts", "c"), ("cz", "c"), ("sz", "s"), ("rz", "z"),
    ("ph", "f"), ("x", "ks"), ("w", "v"), ("q", "k"), ("j", "i"),
    ("ya", "a"), ("ia", "a"), ("yu", "u"), ("iu", "u"), ("yo", "e"), ("io", "e"), ("ye", "e"),
    ("ie", "e"), ("y", "i"), ("ii", "i"), ("ck", "k"),
]  # fmt: skip
_NON_LETTER = re.compile(r"[^a-z]+")
_DOUBLE = re.compile(r"(.)\1+")

# Diminutives people write in forms instead of the full first name (folded spellings).
_DIMINUTIVES_CYRILLIC = {
    "саша": "александр", "шура": "александр", "дима": "дмитрий", "женя": "евгений",
    "катя": "екатерина", "лена": "елена", "миша": "михаил", "коля": "николай",
    "вова": "владимир", "володя": "владимир", "таня": "татьяна", "наташа": "наталья",
    "оля": "ольга", "маша": "мария", "сережа": "сергей", "серёжа": "сергей", "паша": "павел",
    "петя": "петр", "ваня": "иван", "юля": "юлия", "настя": "анастасия", "аня": "анна",
    "света": "светлана", "галя": "галина", "люба": "любовь", "андрюша": "андрей",
    "леша": "алексей", "лёша": "алексей", "алеша": "алексей", "костя": "константин",
    "толя": "анатолий", "витя": "виктор", "гриша": "григорий", "слава": "вячеслав",
    "ира": "ирина", "вика": "виктория", "даша": "дарья", "ксюша": "ксения", "надя": "надежда",
    "вера": "вера", "тема": "артем", "тёма": "артем", "егорка": "егор", "стас": "станислав",
    "рома": "роман", "юра": "юрий", "боря": "борис", "гена": "геннадий", "валя": "валентина",
    "кузя": "кузьма", "max": "maksim", "alex": "aleksandr", "kasia": "katarzyna",
    "gosia": "malgorzata", "tomek": "tomasz", "kuba": "jakub",
    "bartek": "bartlomiej", "asia": "joanna", "ola": "aleksandra", "piotrek": "piotr",
}  # fmt: skip


@lru_cache(maxsize=200_000)
def fold_token(token: str) -> str:
    """One word of a name or company in a spelling shared by Cyrillic and its transliterations:
    "Алёна", "Alyona" and "Aliona" all give "alena"."""
    text = token.lower().translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _NON_LETTER.sub("", text)
    for old, new in _FOLDS:
        if old in text:
            text = text.replace(old, new)
    return _DOUBLE.sub(r"\1", text)


_DIMINUTIVES = {fold_token(k): fold_token(v) for k, v in _DIMINUTIVES_CYRILLIC.items()}
_PATRONYMIC_ENDINGS = ("ovic", "evic", "ovna", "evna", "icna", "inicna")
# Words of a name: letters (an apostrophe inside, as in O'Brien); digits and punctuation split.
_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@dataclass(frozen=True)
class NameParts:
    """A person's name folded for matching: word order ignored, patronymic kept apart."""

    tokens: tuple[str, ...]  # folded given name and surname(s), sorted, initials dropped
    patronymic: str | None
    initials: tuple[str, ...]

    @property
    def key(self) -> str:
        return " ".join(self.tokens)


def is_patronymic(folded: str) -> bool:
    return len(folded) > 5 and folded.endswith(_PATRONYMIC_ENDINGS)


def name_parts(raw: str | None) -> NameParts:
    """Split and fold a free-text name ("Иванов Иван Иванович", "IVANOV Ivan", "Ivan I. Ivanov")."""
    if not raw:
        return NameParts((), None, ())
    words: list[str] = []
    initials: list[str] = []
    for word in _WORDS.findall(raw):
        folded = fold_token(word)
        if not folded:
            continue
        if len(word) == 1 or len(folded) == 1:
            initials.append(folded[0])
        else:
            words.append(folded)
    patronymic = None
    # Only a third word is taken for a patronymic: "Абрамович Роман" keeps its surname.
    if len(words) >= 3:
        for index in (1, 2, 0):
            if index < len(words) and is_patronymic(words[index]):
                patronymic = words.pop(index)
                break
    tokens = [_DIMINUTIVES.get(w, w) for w in words]
    return NameParts(tuple(sorted(tokens)), patronymic, tuple(sorted(initials)))


def name_key(raw: str | None) -> str | None:
    """The name's comparison key: folded words in sorted order, without patronymic and initials."""
    key = name_parts(raw).key
    return key or None


# ---------------------------------------------------------------- companies

_QUOTES = re.compile(r"[«»\"'“”„`]")
_LEGAL_FORMS = [
    "общество с ограниченной ответственностью", "открытое акционерное общество",
    "закрытое акционерное общество", "публичное акционерное общество", "акционерное общество",
    "индивидуальный предприниматель", "spolka z ograniczona odpowiedzialnoscia",
    "sp. z o.o.", "sp. z o. o.", "sp.z o.o.", "spolka akcyjna", "sp. j.", "sp. k.", "s.a.",
    "ооо", "оао", "зао", "пао", "нао", "ао", "ип", "нко", "ано", "фгуп", "гуп", "муп", "тоо",
    "llc", "ltd", "inc", "gmbh", "plc", "corp", "co.", "limited", "sp", "zoo", "sa", "ooo",
    "oao", "zao", "pao", "ip",
]  # fmt: skip
_LEGAL_FORM_RE = re.compile(
    r"(?<![\w])(?:"
    + "|".join(re.escape(f) for f in sorted(_LEGAL_FORMS, key=len, reverse=True))
    + r")(?![\w])",
    re.IGNORECASE,
)


@lru_cache(maxsize=200_000)
def company_key(raw: str | None) -> str | None:
    """A company's name without legal form, quotes and case, folded like names:
    'ООО «Ромашка»', 'Romashka LLC' and '"РОМАШКА" ООО' all give 'romaska'."""
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", raw).lower().replace("ё", "е")
    text = _QUOTES.sub(" ", text)
    # Strip forms before and after dropping diacritics: "ограниченной" and "spółka" both match.
    text = _LEGAL_FORM_RE.sub(" ", text)
    ascii_text = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(ch for ch in ascii_text if not unicodedata.combining(ch)).replace("ł", "l")
    text = _LEGAL_FORM_RE.sub(" ", ascii_text)
    words = [fold_token(w) for w in re.split(r"[\s,.\-()&+/]+", text)]
    key = " ".join(w for w in words if w)
    return key or None


# ---------------------------------------------------------------- tax ids

_NIP_WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)


def is_valid_inn(digits: str) -> bool:
    """Russian ИНН: 10 digits (organisation) or 12 (person, sole trader), checksum verified
    (one implementation, shared with the accounting records)."""
    return digits.isdigit() and normalize_inn(digits) == digits


def is_valid_nip(digits: str) -> bool:
    """Polish NIP: 10 digits, weights 6 5 7 2 3 4 5 6 7 mod 11 (remainder 10 is never issued)."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    remainder = sum(int(d) * w for d, w in zip(digits, _NIP_WEIGHTS, strict=False)) % 11
    return remainder != 10 and remainder == int(digits[9])


@dataclass(frozen=True)
class TaxId:
    value: str  # digits only
    kind: str  # inn_org | inn_person | nip

    @property
    def identifies_person(self) -> bool:
        """An organisation's ИНН or a NIP is shared by every employee: not proof of one person."""
        return self.kind == "inn_person"


def normalize_tax_id(raw: str | None) -> TaxId | None:
    """Digits of a valid ИНН or NIP ("ИНН 7707083893", "PL 526-025-09-95"); None when no
    checksum fits."""
    if not raw:
        return None
    text = raw.strip().upper()
    polish = text.startswith("PL") or "NIP" in text
    digits = re.sub(r"\D", "", text)
    if polish and is_valid_nip(digits):
        return TaxId(digits, "nip")
    if is_valid_inn(digits):
        return TaxId(digits, "inn_org" if len(digits) == 10 else "inn_person")
    if is_valid_nip(digits):
        return TaxId(digits, "nip")
    return None
