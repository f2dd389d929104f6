"""Who is told, by which channel, and under which name. Pure."""

from __future__ import annotations

from .model import EMAIL_CHANNEL, LOG_CHANNEL, Recipient

# Two-character Chinese surnames (复姓) that keep their second character.
_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "司徒",
        "夏侯",
        "宇文",
        "长孙",
        "澹台",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "轩辕",
    }
)


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def first_name(full_name: str) -> str:
    """The given name only: "Alice Smith" -> "Alice"; "王秀英" -> "秀英"; "欧阳娜娜" -> "娜娜".

    A volunteer learns no more of a requester than this while the request is being arranged
    (DESIGN §8: contact details only while the assignment is active, and not in this version).
    """
    name = " ".join(full_name.split())
    if not name:
        return full_name
    if all(_is_cjk(ch) for ch in name) and len(name) >= 2:
        surname = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
        return name[surname:]
    return name.split(" ")[0]


def choose_channel(recipient: Recipient, email_enabled: bool) -> str:
    """Email when the recipient has an address and SMTP is configured; else the log channel.

    SMS, WeChat and in-app come in a later issue; preferences and quiet hours with them.
    """
    if email_enabled and recipient.email:
        return EMAIL_CHANNEL
    return LOG_CHANNEL
