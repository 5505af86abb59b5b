"""Phone numbers to E.164 (CONTRACT section 4: "phone (E.164 with the record's country as
default region)").

Validity rule: a number is kept only if ``phonenumbers.is_valid_number`` accepts it,
i.e. it matches a number range that is actually allocated in libphonenumber's metadata
for its country (not merely ``is_possible_number``, which only checks the length).
Phone numbers are an identity-resolution key, so a wrong number that merges two people
is worse than a missing one. Consequence: numbers with a valid shape but in an
unallocated range (e.g. a German 0151 mobile with only 7 subscriber digits) become null.

Parsing, in this order:

1. The raw text is reduced to a *pre-normalised key*: an extension at the end
   (``x12``, ``ext. 12``, ``#12``, ``;ext=12``) is dropped, then every non-digit.
   The key is international (``+`` and digits) when the text starts with ``+``
   (leading punctuation such as ``(`` or ``Tel.:`` ignored), or starts with ``00`` and
   the region has no region of its own or uses ``00`` as its international prefix
   (``0049 151 ...`` is ``+49 151 ...``). Otherwise it is national and needs a region.
   A national-prefix zero after the country code (``+49 (0)151 ...``) is removed by
   libphonenumber where the country has one, and kept where it is part of the number
   (Italy).
2. International keys are parsed without a region; the record's region does not matter.
   National keys are parsed with the region; national keys without a (known) region give
   null. A national key starting with ``00`` whose region uses another international
   prefix (US ``011``, Australia ``0011``) is first parsed as national (so ``011 49 ...``
   works for US), then, if that fails, as ``+`` and the rest.
3. The result must pass ``is_valid_number``; it is returned as ``phonenumbers``' E.164.

Not supported (null): vanity numbers with letters (``1-800-FLOWERS``) and fields holding
several numbers.

``normalise_phones`` runs the parser once per distinct pre-normalised key, so formatting
variants of a number ("0151 23456789", "0151-23456789") cost one parse.
"""
from __future__ import annotations

import re
from functools import cache

import phonenumbers
import polars as pl

__all__ = ["normalise_phone", "normalise_phones", "phone_key"]

_E164 = phonenumbers.PhoneNumberFormat.E164
_EXTENSION = re.compile(
    r"(?:;\s*ext=|\s*(?:extension|ext\.?|x|#|durchwahl|dw\.?)\s*)\d{1,7}\s*$", re.IGNORECASE
)
_NON_DIGIT = re.compile(r"\D+")
_STARTS_WITH_PLUS = re.compile(r"^[^\d+]*\+")
_MAX_DIGITS = 20  # 3-4 digit international prefix + at most 15 digits (E.164) + slack

Key = tuple[str, "str | None"]


@cache
def _known_region(region: str) -> str | None:
    code = region.strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


@cache
def _idd_is_00(region: str) -> bool:
    """True if the region dials abroad with a plain ``00`` (most of the world)."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = meta.international_prefix if meta is not None else None
    return bool(prefix) and re.fullmatch(prefix, "00") is not None


def phone_key(raw: str | None, default_region: str | None) -> Key | None:
    """Pre-normalised key ``(number, region)`` for a raw phone text, or None if the
    text cannot be a phone number. ``number`` is ``+digits`` (region then None) or
    national ``digits`` (region set). Equal keys always give equal results."""
    if raw is None:
        return None
    text = _EXTENSION.sub("", raw.strip())
    digits = _NON_DIGIT.sub("", text)
    if not digits or len(digits) > _MAX_DIGITS:
        return None
    region = _known_region(default_region) if default_region else None
    if _STARTS_WITH_PLUS.match(text):
        return "+" + digits, None
    if digits.startswith("00") and (region is None or _idd_is_00(region)):
        return "+" + digits[2:], None
    if region is None:
        return None
    return digits, region


def _parse_valid(number: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, _E164)


def _parse_key(number: str, region: str | None) -> str | None:
    """The parser proper: E.164 for a pre-normalised key, or None."""
    result = _parse_valid(number, region)
    if result is None and region is not None and number.startswith("00") and len(number) > 2:
        result = _parse_valid("+" + number[2:], None)
    return result


def normalise_phone(raw: str | None, default_region: str | None) -> str | None:
    """E.164 form of ``raw`` (``default_region``: ISO 3166-1 alpha-2 of the record's
    country, or None), or None when it is not a valid phone number."""
    key = phone_key(raw, default_region)
    return None if key is None else _parse_key(*key)


def normalise_phones(frame: pl.DataFrame) -> pl.DataFrame:
    """Distinct ``(phone_raw, default_region)`` pairs of ``frame`` with ``phone_e164``.

    Join the result back on both columns (null-safe for ``default_region``, e.g.
    ``join(..., nulls_equal=True)`` or SQL ``IS NOT DISTINCT FROM``).
    """
    pairs = frame.select(
        pl.col("phone_raw").cast(pl.String), pl.col("default_region").cast(pl.String)
    ).unique(maintain_order=True)
    results: dict[Key, str | None] = {}
    out: list[str | None] = []
    append = out.append
    key_of = phone_key
    for raw, region in zip(pairs["phone_raw"].to_list(), pairs["default_region"].to_list()):
        key = key_of(raw, region)
        if key is None:
            append(None)
            continue
        try:
            append(results[key])
        except KeyError:
            value = results[key] = _parse_key(*key)
            append(value)
    return pairs.with_columns(pl.Series("phone_e164", out, dtype=pl.String))
