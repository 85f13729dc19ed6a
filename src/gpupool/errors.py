"""The one exception tree of gpupool; every foreign error is translated at the boundary.

GpupoolError
├── InvalidRequest          bad input from a user (HTTP 400/422, CLI exit 2)
├── NotFound                unknown claim, tenant or device (HTTP 404)
├── Unauthorized            missing or wrong token (HTTP 401)
├── Forbidden               a token that may not do this (HTTP 403)
├── Conflict                state does not allow it, e.g. duplicate tenant (HTTP 409)
├── CapacityError           placement would over-commit a device (never reaches users as 5xx)
├── DeviceBackendError      a device backend cannot be used
│   └── NvmlUnavailable     NVML library or driver missing (carries a hint)
├── ServerUnreachable       the SDK cannot reach the API server
└── WaitTimeout             a claim was not bound within the time the caller would wait
"""

from __future__ import annotations


class GpupoolError(Exception):
    """Base of every error gpupool raises on purpose."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(GpupoolError):
    status_code = 422


class NotFound(GpupoolError):
    status_code = 404


class Unauthorized(GpupoolError):
    status_code = 401


class Forbidden(GpupoolError):
    status_code = 403


class Conflict(GpupoolError):
    status_code = 409


class CapacityError(GpupoolError):
    """A bind would break the no-over-commit invariant; the store refused it."""

    status_code = 409


class DeviceBackendError(GpupoolError):
    status_code = 503


class NvmlUnavailable(DeviceBackendError):
    """NVML cannot be loaded or initialised; `hint` says what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(f"{message} (hint: {hint})" if hint else message)
        self.hint = hint


class StoreUnavailable(GpupoolError):
    status_code = 503


class ServerUnreachable(GpupoolError):
    status_code = 503


class WaitTimeout(GpupoolError):
    """`claim(wait=True, timeout_s=...)` gave up; the claim it made was released."""

    status_code = 408


ERRORS_BY_STATUS: dict[int, type[GpupoolError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
}
