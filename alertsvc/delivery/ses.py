"""Sending through Amazon SES (API v2) with boto3.

Messages go as Raw content, so SES sends the bytes ``build_message`` made: the RFC 8058
``List-Unsubscribe`` and ``List-Unsubscribe-Post`` headers, the Message-ID and both parts
exactly as built. botocore's own retries are off: the worker's retry policy (backoff with
jitter, a maximum age, the fleet's rate) is the only one, and a throttled send comes back
to it at once instead of being retried inside a thread that holds a rate-limit slot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from alertsvc.delivery.transports import (
    PermanentSendError,
    SendError,
    SendingPausedError,
    TransientSendError,
)

log = logging.getLogger(__name__)

# The account will send nothing for now: every worker stops and the mail stays queued.
PAUSED_CODES = frozenset({"SendingPausedException", "AccountSuspendedException"})
# Too fast, or the daily quota is used up (sesv2 says LimitExceededException): try later.
THROTTLING_CODES = frozenset(
    {"TooManyRequestsException", "Throttling", "ThrottlingException", "LimitExceededException"}
)
SERVER_CODES = frozenset(
    {"InternalFailure", "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"}
)
# Credentials or permissions that are wrong for every message alike: failing each message
# for good would throw the whole queue away over a setting, so they stay queued (and fail
# at the maximum retry age) while an operator fixes it.
ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
# A pause of smaller than this between failed GetAccount calls would hammer an SES that is
# already unhappy.
ACCOUNT_RETRY_SECONDS = 60


@dataclass(frozen=True)
class SesAccountStatus:
    """What SES's ``GetAccount`` says about sending (``alertsvc sending status``)."""

    max_send_rate: float
    max_24_hour_send: float
    sent_last_24_hours: float
    sending_enabled: bool
    enforcement_status: str | None


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def ses_send_error(error: ClientError | BotoCoreError) -> SendError:
    """The error class the worker acts on, worded ``SES <Code>: <message>`` on one line."""
    if isinstance(error, BotoCoreError):
        # No answer from SES (cannot connect, timed out, connection closed, no credentials).
        return TransientSendError(f"SES {type(error).__name__}: {one_line(error)}")
    details = error.response.get("Error", {})
    code = str(details.get("Code") or "UnknownError")
    message = one_line(details.get("Message") or "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    line = f"SES {code}: {message}" if message else f"SES {code}"
    if code in PAUSED_CODES:
        return SendingPausedError(line)
    if (
        code in THROTTLING_CODES
        or code in SERVER_CODES
        or code in ACCESS_CODES
        or status in (408, 429)
        or status >= 500
    ):
        return TransientSendError(line)
    # MessageRejected, MailFromDomainNotVerifiedException, BadRequestException,
    # NotFoundException (a configuration set that does not exist), any other 4xx.
    return PermanentSendError(line)


class SesTransport:
    """Sends with one boto3 ``sesv2`` client, shared by all of a worker's threads.

    boto3 clients are thread-safe (sessions are not), so the client is built once, here;
    its connection pool holds ``max_pool_connections`` connections so that no sending
    thread waits for one.

    Connecting and waiting for the answer have timeouts of their own. A connection that
    cannot be made has sent nothing, so it gives up soon (``timeout``) and the email is
    retried. Once the request is on its way, SES may have accepted the message whether or
    not its answer arrives, and an email retried then can arrive twice: the answer is
    waited for much longer (``read_timeout``), so that a network that drops for a while
    (a link down, a route flapping) delivers the answer when it comes back, TCP resending
    it, instead of the email being sent again.
    """

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        configuration_set: str | None = None,
        timeout: float = 10,
        read_timeout: float = 60,
        max_pool_connections: int = 10,
        max_send_rate: float | None = None,
        account_refresh_seconds: float = 300,
    ) -> None:
        self.configuration_set = configuration_set
        self.client = boto3.session.Session().client(
            "sesv2",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=timeout,
                read_timeout=read_timeout,
                # total_max_attempts counts the first try: 1 means no retry by botocore.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=max(max_pool_connections, 10),
                # The request is built here, always the same shape: checking it against
                # the API model on every send costs CPU a busy worker does not have.
                parameter_validation=False,
            ),
        )
        self._max_send_rate_setting = max_send_rate
        self._account_refresh_seconds = account_refresh_seconds
        self._account_lock = threading.Lock()
        self._known_rate: float | None = None
        self._next_account_read = 0.0
        # Why the last GetAccount failed, for ``alertsvc sending status``.
        self.account_error: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], concurrency: int) -> SesTransport:
        return cls(
            region=config["SES_REGION"],
            endpoint_url=config["SES_ENDPOINT_URL"] or None,
            configuration_set=config["SES_CONFIGURATION_SET"] or None,
            timeout=float(config["SES_TIMEOUT_SECONDS"]),
            read_timeout=float(config["SES_READ_TIMEOUT_SECONDS"]),
            # One connection per sending thread, and one for GetAccount.
            max_pool_connections=concurrency + 1,
            max_send_rate=config["SES_MAX_SEND_RATE"],
            account_refresh_seconds=float(config["SES_ACCOUNT_REFRESH_SECONDS"]),
        )

    def send(self, message: EmailMessage) -> str:
        """Send ``message`` as built; return the MessageId SES gave it."""
        recipients = [address for _, address in getaddresses(message.get_all("To", [])) if address]
        request: dict[str, Any] = {
            "FromEmailAddress": parseaddr(str(message["From"]))[1],
            "Destination": {"ToAddresses": recipients},
            "Content": {"Raw": {"Data": message.as_bytes()}},
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            response = self.client.send_email(**request)
        except (ClientError, BotoCoreError) as error:
            raise ses_send_error(error) from error
        return str(response["MessageId"])

    def max_send_rate(self) -> float | None:
        """``SES_MAX_SEND_RATE`` if set; otherwise SES's ``MaxSendRate`` from ``GetAccount``,
        read again every ``SES_ACCOUNT_REFRESH_SECONDS``. While SES cannot be asked, the last
        rate it gave (None before the first)."""
        if self._max_send_rate_setting is not None:
            return float(self._max_send_rate_setting)
        with self._account_lock:
            now = time.monotonic()
            if now >= self._next_account_read:
                status = self.account_status()
                if status is None:
                    wait = min(self._account_refresh_seconds, ACCOUNT_RETRY_SECONDS)
                else:
                    self._known_rate = status.max_send_rate
                    wait = self._account_refresh_seconds
                self._next_account_read = now + wait
            return self._known_rate

    def account_status(self) -> SesAccountStatus | None:
        """SES's ``GetAccount``, or None (logged) when it cannot be read: a worker goes on
        sending within its other limits rather than stopping over a status call."""
        self.account_error = None
        try:
            account = self.client.get_account()
            quota = account["SendQuota"]
            return SesAccountStatus(
                max_send_rate=float(quota["MaxSendRate"]),
                max_24_hour_send=float(quota["Max24HourSend"]),
                sent_last_24_hours=float(quota["SentLast24Hours"]),
                sending_enabled=bool(account["SendingEnabled"]),
                enforcement_status=account.get("EnforcementStatus"),
            )
        except (ClientError, BotoCoreError) as error:
            reason = str(ses_send_error(error))
        except Exception as error:
            reason = f"{type(error).__name__}: {one_line(error)}"
        self.account_error = reason
        log.warning("could not read the SES account (GetAccount): %s", reason)
        return None

    def describe_account(self) -> str:
        """One line on the SES account for ``alertsvc sending status``."""
        status = self.account_status()
        if status is None:
            return f"SES account: could not be read (GetAccount): {self.account_error}"
        sending = (
            "sending enabled"
            if status.sending_enabled
            else "SENDING DISABLED by SES: mail stays queued"
        )
        enforcement = f", {status.enforcement_status}" if status.enforcement_status else ""
        override = (
            f" (ALERTSVC_SES_MAX_SEND_RATE={self._max_send_rate_setting:g} is used instead)"
            if self._max_send_rate_setting is not None
            else ""
        )
        return (
            f"SES account: {sending}{enforcement}; at most {status.max_send_rate:g} emails "
            f"a second{override}; {status.sent_last_24_hours:g} of "
            f"{status.max_24_hour_send:g} sent in the last 24 hours"
        )

    def close(self) -> None:
        self.client.close()
