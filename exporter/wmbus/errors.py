"""The one error hierarchy of the protocol core.

Any byte string given to the core gives a result or a `WMBusError`; any other exception is a bug.
Each error carries a stable `code` (the JSON contract, docs/contracts.md section 2), a factual
message, and the link/transport headers known before the failure so that callers can say which
meter it was. Advice for users is not given
here: the layer that knows the product adds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .link import Address, LinkHeader
    from .transport import TransportHeader


class WMBusError(Exception):
    """Base of every error the core raises on bad input."""

    code: ClassVar[str] = "malformed"

    def __init__(
        self,
        message: str,
        *,
        link: LinkHeader | None = None,
        transport: TransportHeader | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.link = link
        self.transport = transport

    @property
    def address(self) -> Address | None:
        """The sender as far as known: the long transport header's, else the link header's."""
        if self.transport is not None and self.transport.address is not None:
            return self.transport.address
        return self.link.address if self.link is not None else None

    def with_context(
        self, link: LinkHeader | None, transport: TransportHeader | None
    ) -> WMBusError:
        """Attach the headers parsed before the failure (keeps ones already attached)."""
        self.link = self.link or link
        self.transport = self.transport or transport
        return self


class CRCError(WMBusError):
    """A block CRC of a frame that carries CRCs does not match."""

    code = "crc"


class TruncatedError(WMBusError):
    """Fewer bytes than the header or the encrypted area needs."""

    code = "truncated"


class MalformedError(WMBusError):
    """Bytes that cannot be parsed: bad BCD, a record running past the end, not a telegram."""

    code = "malformed"


class NoKeyError(WMBusError):
    """The telegram is encrypted and no key was given for it."""

    code = "no_key"


class DecryptionError(WMBusError):
    """No key candidate decrypts the telegram to the 2F2F check bytes."""

    code = "decryption_failed"

    def __init__(self, message: str, *, fingerprint: str) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class UnsupportedError(WMBusError):
    """A well-formed telegram using a feature this decoder does not implement."""

    code = "unsupported"


class KeyFormatError(ValueError):
    """A key given by the user is neither 32 hex digits nor a 16-character text.

    A usage error, not a telegram error: it never contains the key itself.
    """
