"""What every part of the node agent shares: the pool, its records, the settings, who this agent
is, and the two things every part does (release a claim, record an event)."""

from __future__ import annotations

import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupool.agent.options import AgentOptions
from gpupool.devices import SimulatedBackend
from gpupool.model import Claim, ClaimState
from gpupool.model.workload import Workload
from gpupool.pool import PoolService
from gpupool.store.runtime import RuntimeRecords

ACTOR = "agent"
AGENT_ID_FILE = "agent-id"


@dataclass
class AgentContext:
    pool: PoolService
    options: AgentOptions
    state_dir: Path
    agent_id: str
    records: RuntimeRecords
    # Calls from the API and the periodic events are serialised by this lock.
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def simulated(self) -> SimulatedBackend | None:
        backend = self.pool.backend
        return backend if isinstance(backend, SimulatedBackend) else None

    def owns(self, workload: Workload) -> bool:
        """Is this agent the one that runs (or watches) the workload? Rows written before agents
        had names belong to whoever finds them (there was one agent then)."""
        return workload.agent is None or workload.agent == self.agent_id

    def release(self, claim: Claim, reason: str) -> None:
        self.pool.store.end_claim(claim.id, ClaimState.RELEASED, actor=ACTOR, reason=reason)
        self.records.drop_lease(claim.id)
        self.pool.schedule()

    def event(self, action: str, claim: Claim | None, details: dict[str, Any]) -> None:
        if claim is None:
            self.pool.store.add_event(ACTOR, action, details=details)
        else:
            self.pool.store.add_event(ACTOR, action, claim.id, claim.tenant, details)


def agent_id(state_dir: Path) -> str:
    """This agent's name, kept in its state dir: a restart with the same state dir is the same
    agent (it adopts its workloads); a replica with its own state dir is another one."""
    path = state_dir / AGENT_ID_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    name = f"{socket.gethostname()[:100]}-{secrets.token_hex(4)}"
    path.write_text(name + "\n")
    return name
