"""SMS texts that fit ONE provider segment. Pure.

zh-CN: Alibaba Cloud and Tencent Cloud count a Chinese message at 70 characters per segment,
the signature 【筑梦志愿】 included; the provider prepends that signature itself, so `short`
carries the text without it and the budget is 70 - 6 = 64 characters.
en: 160 GSM-7 septets (an extension character such as ``€`` or ``[`` takes two). One
character outside GSM-7 would turn the whole message into UCS-2 (70 per segment), so English
texts are built from GSM-7 only: a name that cannot be written in it falls back to a generic
word ("your volunteer"), punctuation is mapped to its ASCII look-alike.

`compose` fills a template and cuts the long values (a service name) with an ellipsis, the
longest first, until the text fits; values in `keep` (a check-in code, a time) are never cut.
"""

from __future__ import annotations

from .model import Locale

ZH_SIGNATURE = "【筑梦志愿】"
ZH_SEGMENT = 70
EN_SEGMENT = 160
EN_PREFIX = "Zhumeng: "

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
_TO_GSM7 = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "–": "-",
        "—": "-",
        "…": "...",
        "\u00a0": " ",
        "\t": " ",
    }
)
_CUT = {"zh-CN": "…", "en": "..."}


def gsm7_units(text: str) -> int | None:
    """Septets the text takes in GSM-7, or None if it cannot be written in GSM-7."""
    units = 0
    for ch in text:
        if ch in _GSM7_BASIC:
            units += 1
        elif ch in _GSM7_EXTENDED:
            units += 2
        else:
            return None
    return units


def ucs2_units(text: str) -> int:
    """UTF-16 code units: a character outside the BMP takes two."""
    return len(text.encode("utf-16-le")) // 2


def segment_units(locale: Locale, short: str) -> int:
    """What the provider counts for this text; raises for an English text outside GSM-7."""
    if locale == "zh-CN":
        return ucs2_units(ZH_SIGNATURE + short)
    units = gsm7_units(short)
    if units is None:
        raise ValueError("an English SMS must be GSM-7")
    return units


def segment_limit(locale: Locale) -> int:
    return ZH_SEGMENT if locale == "zh-CN" else EN_SEGMENT


def fits(locale: Locale, short: str) -> bool:
    if locale == "en" and gsm7_units(short) is None:
        return False
    return segment_units(locale, short) <= segment_limit(locale)


def gsm7(text: str, fallback: str) -> str:
    """`text` in GSM-7 (look-alike punctuation mapped, other characters dropped), or
    `fallback` when nothing readable is left (e.g. a name written in Chinese)."""
    mapped = text.translate(_TO_GSM7)
    kept = "".join(ch for ch in mapped if ch in _GSM7_BASIC or ch in _GSM7_EXTENDED)
    kept = " ".join(kept.split())
    return kept if any(ch.isalnum() for ch in kept) else fallback


def compose(
    locale: Locale,
    template: str,
    cut: dict[str, str] | None = None,
    keep: dict[str, str] | None = None,
) -> str:
    """`template.format(**cut, **keep)` within one segment: the longest `cut` value loses
    characters (with an ellipsis) until the text fits. English values are made GSM-7."""
    cut_values = dict(cut or {})
    keep_values = dict(keep or {})
    if locale == "en":
        cut_values = {k: gsm7(v, "-") for k, v in cut_values.items()}
        keep_values = {k: gsm7(v, "-") for k, v in keep_values.items()}
    ellipsis = _CUT[locale]
    kept = {k: len(v) for k, v in cut_values.items()}  # characters of each value kept
    shown = dict(cut_values)
    while True:
        text = template.format(**shown, **keep_values)
        if fits(locale, text):
            return text
        # the longest value that still has more than one character gives way
        name = max(
            (k for k in kept if kept[k] > 1),
            key=lambda k: len(shown[k]),
            default=None,
        )
        if name is None:
            raise ValueError(f"SMS template does not fit one segment: {template!r}")
        kept[name] -= 1
        shown[name] = cut_values[name][: kept[name]].rstrip() + ellipsis
