"""One libvirt connection and its events (after Nova's `virt/libvirt/host.py`).

Every libvirt call gpupool makes goes through `LibvirtHost`: node devices for the inventory, mdev
create/remove, domain lookup, hostdev attach/detach, lifecycle events. libvirt errors become
gpupool's (`NotFound`, `Conflict`, `DeviceBackendError`) here, at the boundary.

Seams where libvirt's test driver (`test:///ABS/PATH/host.xml`) lacks a call:
- `attachDeviceFlags` / `detachDeviceFlags`: the persistent config is rewritten with `defineXML`
  instead; a running domain gets the device at its next start (`Attached.live` is False).
- `nodeDeviceDefineXML`: mdevs live in this object's memory, and the availableInstances it reports
  follow them as the kernel's would (one type per parent, one instance fewer per mdev).
A real libvirtd (QEMU/KVM) takes the real calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from types import ModuleType
from typing import Any

from gpupool.devices.libvirt_config import (
    DomainConfig,
    Hostdev,
    mdev_device_xml,
    with_hostdev,
    without_hostdev,
)
from gpupool.devices.nodedev_xml import MdevDevice, PciFunction, parse_mdev, parse_pci_function
from gpupool.errors import Conflict, DeviceBackendError, NotFound
from gpupool.model.vm import PciAddress

log = logging.getLogger("gpupool.libvirt")

LIBVIRT_HINT = (
    "VM support needs libvirt-python: `bash scripts/setup.sh --vms` "
    "(or pip install 'gpupool[vms]' with libvirt-dev and pkg-config installed)"
)

# Lifecycle event kinds (libvirt's VIR_DOMAIN_EVENT_*), by number.
EVENT_NAMES = {
    0: "defined",
    1: "undefined",
    2: "started",
    3: "suspended",
    4: "resumed",
    5: "stopped",
    6: "shutdown",
    7: "pmsuspended",
    8: "crashed",
}
RECONNECTED = "reconnected"  # not libvirt's: the connection was lost and opened again


@dataclass(frozen=True)
class DomainEvent:
    """A domain changed (or, `kind == "reconnected"`, anything may have changed)."""

    kind: str
    name: str = ""
    uuid: str = ""


@dataclass(frozen=True)
class DomainState:
    """A domain now: its live XML (or config when off), persistent config, and run state."""

    name: str
    uuid: str
    active: bool
    persistent: bool
    xml: str
    config_xml: str

    @cached_property
    def config(self) -> DomainConfig:
        return DomainConfig.parse(self.config_xml)

    @cached_property
    def live(self) -> DomainConfig:
        return DomainConfig.parse(self.xml)


@dataclass(frozen=True)
class Attached:
    """Where a hostdev change took effect: the running domain (`live`), its config (`config`)."""

    live: bool
    config: bool
    note: str = ""


def import_libvirt() -> ModuleType:
    try:
        import libvirt
    except ImportError as exc:
        raise DeviceBackendError(f"cannot import libvirt ({exc}); {LIBVIRT_HINT}") from exc
    module: ModuleType = libvirt
    return module


class _EventLoop:
    """libvirt's default event loop in one daemon thread per process (libvirt allows one)."""

    _lock = threading.Lock()
    _started = False

    @classmethod
    def ensure(cls, libvirt: ModuleType) -> None:
        with cls._lock:
            if cls._started:
                return
            libvirt.virEventRegisterDefaultImpl()
            # libvirt prints every error on stderr unless a handler takes them; ours are raised.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            thread = threading.Thread(target=cls._run, args=(libvirt,), name="libvirt-events", daemon=True)
            thread.start()
            cls._started = True

    @staticmethod
    def _run(libvirt: ModuleType) -> None:
        while True:
            try:
                libvirt.virEventRunDefaultImpl()
            except Exception:  # one bad callback must not stop every later event
                log.exception("libvirt event loop")


class LibvirtHost:
    """The libvirt connection to one VM host, opened on `uri` (e.g. `qemu:///system`)."""

    def __init__(self, uri: str) -> None:
        self.libvirt = import_libvirt()
        _EventLoop.ensure(self.libvirt)
        self.uri = uri
        self._lock = threading.RLock()
        self._listeners: list[Callable[[DomainEvent], None]] = []
        self._test_mdevs: dict[str, MdevDevice] = {}  # the test driver's stand-in, by UUID
        self._callback_id: int | None = None
        self._conn: Any = None
        self._open()
        self.hostname = self._call(lambda c: c.getHostname(), "read the host name")
        self.driver = str(self._call(lambda c: c.getType(), "read the driver type"))
        self.is_test_driver = self.driver.lower() == "test"

    # -------------------------------------------------------------- connection
    def _open(self) -> None:
        try:
            conn = self.libvirt.open(self.uri)
        except self.libvirt.libvirtError as exc:
            raise DeviceBackendError(f"libvirt: cannot connect to {self.uri}: {_message(exc)}") from exc
        self._conn = conn
        try:
            self._callback_id = conn.domainEventRegisterAny(
                None, self.libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
            )
        except self.libvirt.libvirtError as exc:
            log.warning("libvirt %s gives no lifecycle events (%s); gpupool resyncs instead", self.uri, exc)
            self._callback_id = None

    def _connection(self) -> Any:
        """The open connection; a dropped one (libvirtd restarted) is opened again, and listeners
        hear `reconnected` so that they resync."""
        with self._lock:
            try:
                alive = bool(self._conn.isAlive())
            except self.libvirt.libvirtError:
                alive = False
            if alive:
                return self._conn
            log.warning("libvirt connection to %s was lost; reconnecting", self.uri)
            self._open()
        self._notify(DomainEvent(RECONNECTED))
        return self._conn

    def _call(self, action: Callable[[Any], Any], what: str) -> Any:
        conn = self._connection()
        try:
            return action(conn)
        except self.libvirt.libvirtError as exc:
            raise self._translate(exc, what) from exc

    def _translate(self, exc: Any, what: str) -> Exception:
        code = exc.get_error_code()
        message = f"libvirt: cannot {what}: {_message(exc)}"
        if code in (self.libvirt.VIR_ERR_NO_DOMAIN, self.libvirt.VIR_ERR_NO_NODE_DEVICE):
            return NotFound(message)
        if code == self.libvirt.VIR_ERR_OPERATION_INVALID:
            return Conflict(message)
        return DeviceBackendError(message)

    def _unsupported(self, exc: Any) -> bool:
        return bool(exc.get_error_code() == self.libvirt.VIR_ERR_NO_SUPPORT)

    def close(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            try:
                if self._callback_id is not None:
                    self._conn.domainEventDeregisterAny(self._callback_id)
                self._conn.close()
            except self.libvirt.libvirtError:
                pass
            self._conn = None

    # ------------------------------------------------------------------ events
    def on_domain_event(self, listener: Callable[[DomainEvent], None]) -> None:
        """Call `listener` (from libvirt's event thread: keep it short) on every lifecycle event."""
        self._listeners.append(listener)

    def _on_lifecycle(self, _conn: Any, domain: Any, event: int, _detail: int, _opaque: Any) -> None:
        try:
            notice = DomainEvent(EVENT_NAMES.get(event, str(event)), domain.name(), domain.UUIDString())
        except self.libvirt.libvirtError:
            return
        self._notify(notice)

    def _notify(self, notice: DomainEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("domain event listener failed on %s", notice)

    # ------------------------------------------------------------ node devices
    def pci_functions(self) -> list[PciFunction]:
        """Every PCI function libvirt knows (the test driver's mdev stand-ins accounted for)."""

        def read(conn: Any) -> list[str]:
            return [
                device.XMLDesc(0)
                for device in conn.listAllDevices(self.libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
            ]

        functions = [
            f for f in (parse_pci_function(xml) for xml in self._call(read, "list PCI devices")) if f
        ]
        if not self._test_mdevs:
            return functions
        return [self._with_stand_in_mdevs(function) for function in functions]

    def mdevs(self) -> list[MdevDevice]:
        """Every mediated device on the host (with the test driver: its stand-ins too)."""

        def read(conn: Any) -> list[str]:
            return [
                device.XMLDesc(0)
                for device in conn.listAllDevices(self.libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV)
            ]

        found = [m for m in (parse_mdev(xml) for xml in self._call(read, "list mdevs")) if m]
        with self._lock:
            return found + list(self._test_mdevs.values())

    def create_mdev(self, parent: PciAddress, type_id: str, uuid: str) -> None:
        """Define and start an mdev of `type_id` on `parent` (persistent: it survives a reboot)."""
        xml = mdev_device_xml(parent.nodedev_name, type_id, uuid)
        conn = self._connection()
        try:
            device = conn.nodeDeviceDefineXML(xml, 0)
        except self.libvirt.libvirtError as exc:
            if self._unsupported(exc) and self.is_test_driver:
                with self._lock:
                    self._test_mdevs[uuid] = MdevDevice(
                        f"mdev_{uuid.replace('-', '_')}", uuid, type_id, parent.nodedev_name
                    )
                return
            if self._unsupported(exc):
                raise DeviceBackendError(
                    f"libvirt at {self.uri} cannot define mdevs (needs libvirt >= 7.3): {_message(exc)}"
                ) from exc
            raise self._translate(exc, f"define mdev {uuid} ({type_id}) on {parent}") from exc
        try:
            device.create()
        except self.libvirt.libvirtError as exc:
            try:
                device.undefine()
            except self.libvirt.libvirtError:
                log.warning("mdev %s defined but neither started nor undefined", uuid)
            raise self._translate(exc, f"start mdev {uuid} ({type_id}) on {parent}") from exc

    def remove_mdev(self, uuid: str) -> None:
        """Stop and undefine an mdev; an mdev that is already gone is not an error."""
        with self._lock:
            if self._test_mdevs.pop(uuid, None) is not None:
                return
        conn = self._connection()
        try:
            devices = conn.listAllDevices(self.libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV)
        except self.libvirt.libvirtError as exc:
            raise self._translate(exc, "list mdevs") from exc
        for device in devices:
            found = parse_mdev(device.XMLDesc(0))
            if found is None or found.uuid != uuid:
                continue
            for step in ("destroy", "undefine"):
                try:
                    getattr(device, step)()
                except self.libvirt.libvirtError as exc:
                    if exc.get_error_code() not in (
                        self.libvirt.VIR_ERR_OPERATION_INVALID,
                        self.libvirt.VIR_ERR_NO_SUPPORT,
                    ):
                        raise self._translate(exc, f"{step} mdev {uuid}") from exc

    def _with_stand_in_mdevs(self, function: PciFunction) -> PciFunction:
        with self._lock:
            mine = [m for m in self._test_mdevs.values() if m.parent_name == function.name]
        if not mine or not function.mdev_types:
            return function
        # As NVIDIA's host driver does: once a parent hosts one type, the others show no room.
        types = tuple(
            replace(
                entry,
                available_instances=max(
                    0, entry.available_instances - sum(m.type_id == entry.type_id for m in mine)
                )
                if all(m.type_id == entry.type_id for m in mine)
                else 0,
            )
            for entry in function.mdev_types
        )
        return replace(function, mdev_types=types)

    # ----------------------------------------------------------------- domains
    def domain_names(self) -> list[str]:
        return sorted(self._call(lambda c: [d.name() for d in c.listAllDomains(0)], "list domains"))

    def domains(self) -> list[DomainState]:
        """Every domain with its XML, running or not."""
        found = []
        for name in self.domain_names():
            try:
                found.append(self.domain(name))
            except NotFound:
                continue  # undefined between the listing and the read
        return found

    def domain(self, name: str) -> DomainState:
        """A domain by name; NotFound naming the known ones."""

        def read(conn: Any) -> DomainState:
            domain = conn.lookupByName(name)
            return self._state(domain)

        try:
            return self._call(read, f"read domain {name!r}")  # type: ignore[no-any-return]
        except NotFound:
            raise NotFound(f"unknown domain {name!r}") from None

    def _state(self, domain: Any) -> DomainState:
        active = bool(domain.isActive())
        persistent = bool(domain.isPersistent())
        xml = domain.XMLDesc(0)
        config_xml = domain.XMLDesc(self.libvirt.VIR_DOMAIN_XML_INACTIVE) if persistent else xml
        return DomainState(domain.name(), domain.UUIDString().lower(), active, persistent, xml, config_xml)

    def attach(self, name: str, hostdev: Hostdev) -> Attached:
        """Add a hostdev to the domain's config (persistent domains) and to the running domain."""
        return self._change(name, hostdev, attach=True)

    def detach(self, name: str, hostdev: Hostdev) -> Attached:
        """Remove a hostdev from the running domain and its config; absent is not an error."""
        return self._change(name, hostdev, attach=False)

    def _change(self, name: str, hostdev: Hostdev, attach: bool) -> Attached:
        state = self.domain(name)
        verb = "attach" if attach else "detach"
        in_live = state.active and state.live.holds(hostdev)
        in_config = state.persistent and state.config.holds(hostdev)
        live = state.active and (in_live != attach)
        config = state.persistent and (in_config != attach)
        if not live and not config:
            return Attached(live=state.active, config=state.persistent)  # nothing to do: idempotent
        flags = (self.libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (
            self.libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0
        )
        conn = self._connection()
        try:
            domain = conn.lookupByName(name)
            call = domain.attachDeviceFlags if attach else domain.detachDeviceFlags
            call(hostdev.to_xml(), flags)
        except self.libvirt.libvirtError as exc:
            if exc.get_error_code() == self.libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFound(f"unknown domain {name!r}") from None
            if not self._unsupported(exc):
                raise self._translate(exc, f"{verb} {hostdev.key} on domain {name!r}") from exc
            return self._change_by_redefine(state, hostdev, attach, live, config)
        return Attached(live=state.active, config=state.persistent)

    def _change_by_redefine(
        self, state: DomainState, hostdev: Hostdev, attach: bool, live: bool, config: bool
    ) -> Attached:
        """The seam for drivers without hot-plug (the test driver): rewrite the persistent config."""
        note = ""
        if config:
            edited = (
                with_hostdev(state.config_xml, hostdev)
                if attach
                else without_hostdev(state.config_xml, hostdev)
            )
            self._call(lambda c: c.defineXML(edited), f"redefine domain {state.name!r}")
        if live:
            note = f"the {self.driver} driver cannot hot-plug: the running domain sees it at its next start"
        return Attached(live=state.active and not live, config=state.persistent, note=note)


def _message(exc: Any) -> str:
    text = exc.get_error_message() if hasattr(exc, "get_error_message") else None
    return str(text or exc).strip()
