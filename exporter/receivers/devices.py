"""A stick's device as this user finds it: missing, or not to be opened, in plain words with
what to do. The receiver says it when an open fails; `check-config` says it by looking."""

from __future__ import annotations

import errno
import grp
import os
import pwd

#: Open failures that mean "this user may not" rather than "it is not there".
DENIED = frozenset({errno.EACCES, errno.EPERM})
MISSING = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO})


def missing(device: str) -> str:
    """The device is not there, and how to find the stick's name."""
    return (
        f"{device} does not exist: plug the stick in (ls -l /dev/serial/by-id/ lists the sticks "
        "plugged in, by their stable names)"
    )


def denied(device: str) -> str:
    """Who may not open the device, and the command that lets them."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = f"uid {os.geteuid()}"
    try:
        group = grp.getgrgid(os.stat(device).st_gid).gr_name
    except (OSError, KeyError):
        group = "dialout"
    return (
        f"permission denied: the user {user} may not open {device} (it belongs to the group "
        f"{group}): sudo usermod -aG {group} $USER, then log out and in again"
    )


def device_problem(device: str) -> str | None:
    """Why this user cannot open a stick's device, found by looking only, in the words the
    receiver uses when its open fails; None when nothing stands in the way (and for socket://
    and rfc2217:// URLs)."""
    if "://" in device:
        return None
    if not os.path.exists(device):
        return missing(device)
    if not os.access(device, os.R_OK | os.W_OK):
        return denied(device)
    return None
