"""What the dashboard stream sends after its first snapshot: only what changed.

A stream opens with the whole overview (`event: overview`); each later wake-up sends a delta
(`event: delta`) holding the device cards that differ from the last ones sent, the lists that
changed (queue, bound claims, tenants: each capped in `build_overview`) and the events not sent
yet. On a 1,000-node pool where one claim is bound, that is one or two cards instead of 8,000.
When the set of devices itself changes (a node joins or leaves) the stream sends a full overview
again, so the page never has to guess.
"""

from __future__ import annotations

from typing import Any

# Fields sent whenever they differ from the last message; devices and events are diffed by key.
_WHOLE_FIELDS = ("queue", "queue_length", "claims", "claims_total", "tenants", "viewer", "admin", "policy")


class OverviewDiffer:
    """The last overview sent on one stream, and the delta from it to the next one."""

    def __init__(self) -> None:
        self._devices: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._fields: dict[str, Any] = {}
        self._last_event_id = 0

    def full(self, data: dict[str, Any]) -> dict[str, Any]:
        """The whole overview (`build_overview`'s) as sent, and remembered, for a first message or
        a resync."""
        self._devices = {card["uuid"]: card for card in data["devices"]}
        self._order = [card["uuid"] for card in data["devices"]]
        self._fields = {name: data[name] for name in _WHOLE_FIELDS}
        self._last_event_id = max((event["id"] for event in data["events"]), default=self._last_event_id)
        return data

    def delta(self, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(`overview`, everything) when the device set changed, else (`delta`, what changed).

        The cards are the hub's shared ones: an unchanged card is the very object sent last time,
        so most of 8,000 are passed over by identity, without comparing their fields."""
        order = [card["uuid"] for card in data["devices"]]
        if order != self._order:
            return "overview", self.full(data)
        last = self._devices
        changed = [
            card for card in data["devices"] if (sent := last.get(card["uuid"])) is not card and sent != card
        ]
        for card in changed:
            self._devices[card["uuid"]] = card
        delta: dict[str, Any] = {
            "generated_at": data["generated_at"],
            "sample_id": data["sample_id"],
            "devices": changed,
            "events": [event for event in data["events"] if event["id"] > self._last_event_id],
        }
        for name in _WHOLE_FIELDS:
            if data[name] != self._fields.get(name):
                delta[name] = self._fields[name] = data[name]
        self._last_event_id = max((event["id"] for event in delta["events"]), default=self._last_event_id)
        return "delta", delta
