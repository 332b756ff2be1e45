"""The client's options, checked: each ``check_*`` returns the value to keep, or raises an
:class:`~qvq_sdk.errors.InputError` that says what is accepted."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .errors import InputError

PROTOCOLS = ("queue", "call", "openai")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_timeout(timeout: Any) -> Tuple[float, float]:
    if _is_number(timeout):
        pair: Tuple[Any, ...] = (timeout, timeout)
    elif isinstance(timeout, tuple) and len(timeout) == 2:
        pair = timeout
    else:
        raise InputError(
            f"timeout must be seconds, or a (connect, read) pair of seconds, not {timeout!r}.", input="timeout"
        )
    if not all(_is_number(value) and 0 < value < float("inf") for value in pair):
        raise InputError(f"timeout values must be positive numbers of seconds, not {timeout!r}.", input="timeout")
    return float(pair[0]), float(pair[1])


def check_deadline(deadline: Any) -> Optional[float]:
    if deadline is None:
        return None
    if not (_is_number(deadline) and 0 < deadline < float("inf")):
        raise InputError(f"deadline must be a positive number of seconds or None, not {deadline!r}.", input="deadline")
    return float(deadline)


def check_wake_timeout(wake_timeout: Any) -> Optional[float]:
    if wake_timeout is None:
        return None
    if not (_is_number(wake_timeout) and 0 <= wake_timeout < float("inf")):
        raise InputError(
            f"wake_timeout must be a number of seconds >= 0 (0: do not wait), or None (no limit but the "
            f"deadline), not {wake_timeout!r}.",
            input="wake_timeout",
        )
    return float(wake_timeout)


def check_max_retries(max_retries: Any) -> int:
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise InputError(f"max_retries must be a whole number >= 0, not {max_retries!r}.", input="max_retries")
    return max_retries


def check_protocol(protocol: Any) -> str:
    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be 'queue', 'call' or 'openai', not {protocol!r}.", input="protocol")
    return str(protocol)


def check_proxies(proxies: Any) -> Optional[Dict[str, str]]:
    if proxies is not None and not (
        isinstance(proxies, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in proxies.items())
    ):
        raise InputError("proxies must be a dict like {'https': 'http://proxy:3128'}.", input="proxies")
    return proxies
