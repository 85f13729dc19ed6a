"""The overview's device cards, built once per pool change or telemetry sample and shared.

Every open dashboard stream and every `GET /v1/overview` shows the same cards: 8,000 of them on a
1,000-node pool. Built per stream and per change (a pool snapshot, a fresh telemetry read and
8,000 validated models each time) they cost the server more than the claims that caused the
change. Here they are built as the JSON-ready dicts the stream sends (`DeviceCard`'s fields, in
its order), at most once per (committed pool state, telemetry sample, inventory), and a card whose
inputs did not change stays the same dict object: a stream finds the changed cards by identity.

A tenant sees other tenants' shares of a device only as `other` (`ViewerCards` masks them, and
keeps its masked copy while the shared card stays the same object).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from gpupool.model import Claim, ClaimState, Device, DeviceTelemetry, Tenant
from gpupool.model.vm import VM_DOMAIN_LABEL
from gpupool.pool import PoolService

Card = dict[str, Any]
OTHER_TENANT = "other"

# (claim id, tenant, memory bytes, compute percent, VM domain or None) of one claim on one device
_SegmentKey = tuple[str, str, int, int, str | None]


class DeviceCards:
    """The pool's device cards as every viewer's base (segments unmasked); thread-safe.

    After the first build only the cards of devices whose totals, segments or telemetry differ
    from the last build are made again (found by set differences of the inputs, not by visiting
    every card), so a claim on an 8,000-GPU pool costs a few cards, not 8,000."""

    def __init__(self, pool: PoolService) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._cards: list[Card] = []
        # What the cards were last built from: the inventory (its version and, by UUID, each
        # device's place), the totals, the segments and the telemetry (memory used, utilization).
        self._inventory = -1
        self._devices: list[Device] = []
        self._place: dict[str, int] = {}
        self._allocations: dict[str, tuple[int, int]] = {}
        self._segments: dict[str, tuple[_SegmentKey, ...]] = {}
        self._samples: dict[str, tuple[int, float | None]] = {}
        self._sample_id: int | None = None

    def cards(self, telemetry: Mapping[str, DeviceTelemetry], sample_id: int | None) -> list[Card]:
        """The cards for the committed state now and `telemetry` (the sample numbered `sample_id`;
        None: a sample of its own, never reused). Do not modify what is returned: it is shared."""
        state = self.pool.store.view()
        with self._lock:
            inventory = self.pool.inventory_version  # before the devices: a later move rebuilds
            with state.lock:  # the generation and what it stands for, from the same commit
                generation = state.generation
                key = None
                if generation >= 0 and sample_id is not None:  # -1: reloading, nothing to key on
                    key = (generation, sample_id, inventory)
                    if key == self._key:
                        return self._cards
                allocations = dict(state.allocations)
                bound = [claim for claim in state.claims.values() if claim.state == ClaimState.BOUND]
            segments = _segments(bound)
            if sample_id is None or sample_id != self._sample_id:
                samples = {u: (t.memory_used_bytes, t.utilization_percent) for u, t in telemetry.items()}
            else:
                samples = self._samples
            if inventory != self._inventory:
                self._inventory, self._devices = inventory, self.pool.devices
                self._place = {device.uuid: place for place, device in enumerate(self._devices)}
                changed: Iterable[str] = self._place
                self._cards = [{} for _ in self._devices]
            else:
                changed = {uuid for uuid, _ in allocations.items() ^ self._allocations.items()}
                changed.update(uuid for uuid, _ in segments.items() ^ self._segments.items())
                if samples is not self._samples:
                    changed.update(uuid for uuid, _ in samples.items() ^ self._samples.items())
                self._cards = list(self._cards)  # the last list stays as it was for its readers
            for uuid in changed:
                place = self._place.get(uuid)
                if place is not None:  # else a device no longer (or not yet) in the inventory
                    self._cards[place] = _card(
                        self._devices[place],
                        allocations.get(uuid, (0, 0)),
                        samples.get(uuid),
                        segments.get(uuid, ()),
                    )
            self._allocations, self._segments, self._samples = allocations, segments, samples
            self._sample_id, self._key = sample_id, key
            return self._cards


def _segments(bound: list[Claim]) -> dict[str, tuple[_SegmentKey, ...]]:
    """Each device's segments, newest claim first (as the store lists claims)."""
    segments: dict[str, list[_SegmentKey]] = {}
    for claim in reversed(bound):
        holder = claim.spec.labels.get(VM_DOMAIN_LABEL)
        for binding in claim.bindings:
            segments.setdefault(binding.device_uuid, []).append(
                (claim.id, claim.tenant, binding.memory_bytes, binding.compute_percent, holder)
            )
    return {uuid: tuple(keys) for uuid, keys in segments.items()}


def _card(
    device: Device,
    allocated: tuple[int, int],
    sample: tuple[int, float | None] | None,
    segments: tuple[_SegmentKey, ...],
) -> Card:
    """A `DeviceCard` as `model_dump(mode="json")` writes it."""
    utilization = None if sample is None or sample[1] is None else float(sample[1])
    return {
        "uuid": device.uuid,
        "node": device.node,
        "index": device.index,
        "model": device.model,
        "memory_total_bytes": device.memory_total_bytes,
        "memory_allocated_bytes": allocated[0],
        "compute_allocated_percent": allocated[1],
        "memory_used_bytes": None if sample is None else sample[0],
        "utilization_percent": utilization,
        "segments": [
            {
                "claim_id": claim_id,
                "tenant": tenant,
                "memory_bytes": memory,
                "compute_percent": compute,
                "holder": holder,
            }
            for claim_id, tenant, memory, compute, holder in segments
        ],
    }


class ViewerCards:
    """One viewer's cards: the shared ones, with other tenants' segments masked for a tenant."""

    def __init__(self, viewer: Tenant) -> None:
        self.viewer = viewer
        self._masked: dict[str, tuple[Card, Card]] = {}  # uuid -> (shared card, its masked copy)

    def __call__(self, shared: list[Card]) -> list[Card]:
        if self.viewer.is_admin:
            return shared
        mine = self.viewer.name
        masked: dict[str, tuple[Card, Card]] = {}
        cards = []
        for card in shared:
            if all(segment["tenant"] == mine for segment in card["segments"]):
                cards.append(card)
                continue
            prior = self._masked.get(card["uuid"])
            if prior is not None and prior[0] is card:
                copy = prior[1]
            else:
                copy = {**card, "segments": [_masked(segment, mine) for segment in card["segments"]]}
            masked[card["uuid"]] = (card, copy)
            cards.append(copy)
        self._masked = masked
        return cards


def _masked(segment: dict[str, Any], viewer: str) -> dict[str, Any]:
    if segment["tenant"] == viewer:
        return segment
    return {**segment, "claim_id": "", "tenant": OTHER_TENANT, "holder": None}
