"""Recognising direct identifiers: in a column's header, and in a cell's value.

The warehouse never holds a direct identifier. Two checks keep them out:

* :func:`header_looks_like_identifier` reads a header the way a person would, whatever its
  punctuation, spacing or capitals (``D.O.B``, ``Post.Code``, ``Tel No``, ``Addr Line 1``,
  ``FirstName``): it compares the header's words, and the header with its punctuation removed,
  with words that name identifiers. A word only counts whole, so ``contact_id`` is not a phone
  number and ``course_name`` is not a person's name.
* :func:`identifier_kind` says which identifier a value looks like: an NHS number (10 digits,
  written whole or 3-3-4 with spaces or hyphens, with a valid modulus-11 check digit), an email
  address, a UK postcode, a UK phone number, or (in an id column) a person's name. The gate runs
  it in a Great Expectations suite (:mod:`pkpi.suites`); the errors file uses it to hide values.

Both err on the side of refusing. Known false positives (and how a partner avoids them) are
written in :data:`FALSE_POSITIVES`, which the partner pages quote.
"""

from __future__ import annotations

import re
import unicodedata

# --- headers -----------------------------------------------------------------------------------

# A header word that, on its own, names a direct identifier.
IDENTIFIER_WORDS = frozenset({
    "name", "names", "forename", "forenames", "surname", "surnames", "firstname", "lastname",
    "givenname", "fullname", "middlename", "familyname", "maidenname", "nickname", "initials",
    "dob", "birth", "birthdate", "birthday", "dateofbirth",
    "address", "addresses", "addr", "street", "postcode", "postcodes", "zip", "zipcode", "postal",
    "phone", "telephone", "tel", "mobile", "mob", "email", "emails",
    "upn", "uln", "nhs", "nhsno", "nhsnumber", "nino", "chi", "ninumber", "passport",
})
# The header with punctuation and spaces removed, compared whole: D.O.B, N.I., E-mail.
IDENTIFIER_SQUASHED = frozenset({"dob", "ni", "nhs", "upn", "uln", "nino", "chi", "email", "tel"})
# ... or containing one of these (long enough never to occur by chance inside a contract name).
IDENTIFIER_PARTS = (
    "dateofbirth", "birthdate", "postcode", "phone", "mobile", "email", "surname", "forename",
    "firstname", "lastname", "givenname", "fullname", "middlename", "familyname", "maidenname",
    "address", "nhsnumber", "ninumber", "nationalinsurance", "insurancenumber", "uniquepupil",
    "uniquelearner",
)
# Consecutive header words that together name an identifier.
IDENTIFIER_PHRASES = (
    ("contact", "number"), ("contact", "no"), ("contact", "tel"), ("tel", "no"), ("ni", "no"),
    ("ni", "number"), ("nhs", "no"), ("post", "code"), ("e", "mail"), ("date", "of", "birth"),
    ("d", "o", "b"), ("home", "number"), ("house", "number"), ("unique", "pupil"),
    ("unique", "learner"), ("pupil", "number"), ("learner", "number"),
)
# "name" after one of these is not a person's name.
NOT_A_PERSON = frozenset({
    "course", "partner", "agency", "team", "organisation", "organization", "org", "provider",
    "service", "file", "sheet", "kpi", "return", "sector", "source", "setting", "event", "module",
})


def _plain(text: str) -> str:
    """Compatibility forms folded (full-width letters become ASCII) and accents dropped."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def header_words(header: str) -> list[str]:
    """A header as lower-case words: punctuation, spaces and camelCase all separate words."""
    text = _plain(header)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)  # firstName -> first Name
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)  # NHSNumber -> NHS Number
    return re.findall(r"[^\W\d_]+|[0-9]+", text.lower())


def header_looks_like_identifier(header: str) -> bool:
    """True when a column header names a direct identifier (name, NHS number, DOB, ...)."""
    words = header_words(header)
    squashed = "".join(w for w in words if not w.isdigit())
    if squashed in IDENTIFIER_SQUASHED or any(part in squashed for part in IDENTIFIER_PARTS):
        return True
    for index, word in enumerate(words):
        if word in IDENTIFIER_WORDS:
            if word in ("name", "names") and index and words[index - 1] in NOT_A_PERSON:
                continue
            return True
        for phrase in IDENTIFIER_PHRASES:
            if tuple(words[index:index + len(phrase)]) == phrase:
                return True
    return False


# --- values ------------------------------------------------------------------------------------

NHS_NUMBER, EMAIL, POSTCODE, PHONE, PERSON_NAME = "nhs_number", "email", "postcode", "phone", "name"
VALUE_KINDS = (NHS_NUMBER, EMAIL, POSTCODE, PHONE)  # looked for in every column
ID_KINDS = VALUE_KINDS + (PERSON_NAME,)  # in id columns (an id is a code, never a name)
KIND_WORDS = {NHS_NUMBER: "an NHS number", EMAIL: "an email address", POSTCODE: "a postcode",
              PHONE: "a phone number", PERSON_NAME: "a person's name"}


def describe_kinds(kinds: tuple[str, ...] | list[str]) -> str:
    """``("nhs_number", "email")`` -> "an NHS number or an email address"."""
    words = [KIND_WORDS[k] for k in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]

# Characters that join the parts of one code: digits glued to letters by these are part of the
# code (K-4010232137 is a code, 401 023 2137 on its own is an NHS number).
_CODE_JOINERS = r"\w\-/.+"
_NHS = re.compile(rf"(?<![{_CODE_JOINERS}])([0-9]{{3}})[ \-]?([0-9]{{3}})[ \-]?([0-9]{{4}})(?![{_CODE_JOINERS}])")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\W\d_]{2,}")
_POSTCODE_WHOLE = re.compile(r"(?:[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}|GIR\s*0AA)", re.IGNORECASE)
_POSTCODE_WORDS = re.compile(r"(?<!\S)[A-Z]{1,2}[0-9][A-Z0-9]?\s+[0-9][A-Z]{2}(?!\S)", re.IGNORECASE)
_PHONE = re.compile(rf"(?<![{_CODE_JOINERS}])(?:\+|00)?[0-9(][0-9 ()\-]{{8,18}}[0-9](?![{_CODE_JOINERS}])")
_NAME_WORD = re.compile(r"[^\W\d_]+(?:['\u2019.\-][^\W\d_]+)*\.?")
_DIGIT = re.compile(r"\d")  # any script: used only to fold foreign digits before the checks
# Cheap first passes (nested regex quantifiers would cost more than all the exact checks): an
# NHS or phone number needs ten digits, a postcode a letter followed by a digit.
_NON_DIGITS = re.compile(r"[^0-9]+")
_LETTER_DIGIT = re.compile(r"[A-Za-z]\s*[0-9]")


def _fold(value: str) -> str:
    """Full-width and other-script digits as ASCII, so an identifier cannot hide in them."""
    if value.isascii():
        return value
    value = unicodedata.normalize("NFKC", value)
    return _DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(), 0)), value)


def nhs_check_digit_valid(digits: str) -> bool:
    """The NHS number modulus-11 check: weights 10..2 on the first nine digits."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1)))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def _is_nhs_number(value: str) -> bool:
    return any(nhs_check_digit_valid("".join(m.groups())) for m in _NHS.finditer(value))


def _is_phone(value: str) -> bool:
    for match in _PHONE.finditer(value):
        text = match.group().replace("(0)", "")
        digits = re.sub(r"[^0-9]", "", text)
        if text.startswith("+") or text.startswith("00"):
            if digits.startswith("0044") and 12 <= len(digits) <= 14:
                return True
            if digits.startswith("44") and 11 <= len(digits) <= 12 and text.startswith("+"):
                return True
        elif digits.startswith("0") and not digits.startswith("00") and 10 <= len(digits) <= 11:
            return True
    return False


def _title_case_part(part: str) -> bool:
    if len(part) >= 2 and part[0].isupper() and part[1:].islower():
        return True
    for prefix in ("Mc", "Mac"):  # McDonald, MacLeod
        rest = part[len(prefix):]
        if part.startswith(prefix) and len(rest) >= 2 and rest[0].isupper() and rest[1:].islower():
            return True
    return False


def _is_name(value: str) -> bool:
    """Words of letters only, as a person's name is written: two or more, or one in Title Case."""
    if _DIGIT.search(value):
        return False
    words = [w for w in re.split(r"[\s,]+", value) if w]
    if not words or not all(_NAME_WORD.fullmatch(w) for w in words):
        return False
    if len(words) >= 2:
        return sum(1 for w in words if len(w.strip(".")) >= 2) >= 2
    # One word: Jemima, Smith-Jones, O'Brien, McDonald (but not K-Zoe, ABC or alpha).
    parts = re.split(r"['\u2019]", words[0])
    if len(parts) == 2 and len(parts[0]) == 1 and parts[0].isupper():
        parts = parts[1:]  # O'Brien
    return all(_title_case_part(p) for p in "-".join(parts).split("-"))


def identifier_kind(value: object, kinds: tuple[str, ...] | list[str] = VALUE_KINDS) -> str | None:
    """Which kind of direct identifier ``value`` looks like (one of ``kinds``), or None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = _fold(str(value).strip())
    if not text:
        return None
    ten_digits = len(_NON_DIGITS.sub("", text)) >= 10
    if ten_digits and NHS_NUMBER in kinds and _is_nhs_number(text):
        return NHS_NUMBER
    if EMAIL in kinds and "@" in text and _EMAIL.search(text):
        return EMAIL
    if (POSTCODE in kinds and _LETTER_DIGIT.search(text)
            and (_POSTCODE_WHOLE.fullmatch(text) or _POSTCODE_WORDS.search(text))):
        return POSTCODE
    if ten_digits and PHONE in kinds and _is_phone(text):
        return PHONE
    if PERSON_NAME in kinds and _is_name(text):
        return PERSON_NAME
    return None


FALSE_POSITIVES = (
    "A value is refused as an identifier when it only looks like one, so choose codes that "
    "cannot: a 10-digit number that happens to pass the NHS check digit (about one in eleven "
    "random 10-digit numbers does), a code shaped like a postcode (AB1 2CD, AB12CD), a number of "
    "10 or 11 digits starting 0 or +44 (a phone number), or an id that is a word in Title Case "
    "(Jemima) or several words (it reads as a name). Start every id with letters and a hyphen "
    "and include digits, for example K-4010232137 or NCT-C2503-00001: digits joined to letters "
    "by - _ / . are part of the code and are never read as an NHS or phone number."
)
