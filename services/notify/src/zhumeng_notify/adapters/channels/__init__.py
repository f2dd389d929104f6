"""Notify's channels behind one interface (`app.ports.Channel`): log, email (SMTP), SMS
(Alibaba Cloud or Tencent Cloud), WeChat subscription messages and in-app (SSE)."""

from .alibaba_sms import AlibabaSmsChannel
from .inapp import InAppChannel, InAppFeed, InAppHub
from .log import LogChannel
from .registry import build_channels, close_channels
from .smtp import SmtpChannel
from .templates import TemplateTable
from .tencent_sms import TencentSmsChannel
from .wechat import WeChatSubscribeChannel

__all__ = [
    "AlibabaSmsChannel",
    "InAppChannel",
    "InAppFeed",
    "InAppHub",
    "LogChannel",
    "SmtpChannel",
    "TemplateTable",
    "TencentSmsChannel",
    "WeChatSubscribeChannel",
    "build_channels",
    "close_channels",
]
