"""Tables of the durable store (SQLAlchemy Core), one per kind of record."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

# The inventory as last seen: kept so that a restart can tell which bound devices have vanished.
devices = Table(
    "devices",
    metadata,
    Column("uuid", String(96), primary_key=True),
    Column("node", String(255), nullable=False),
    Column("device_index", Integer, nullable=False),
    Column("model", String(128), nullable=False),
    Column("memory_total_bytes", BigInteger, nullable=False),
    Column("sm_count", Integer, nullable=False, default=0),
    Column("present", Boolean, nullable=False, default=True),
    Column("last_seen", Float, nullable=False),
    # Running totals of what is bound; updated with a guarded UPDATE inside the bind transaction,
    # which is what enforces the no-over-commit invariant under concurrent writers.
    Column("allocated_memory_bytes", BigInteger, nullable=False, default=0),
    Column("allocated_compute_percent", Integer, nullable=False, default=0),
)

tenants = Table(
    "tenants",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    # The OS user the node agent runs this tenant's detached workloads as (NULL: none, refused).
    Column("run_as", String(32), nullable=True),
)

claims = Table(
    "claims",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # arrival order for FIFO
    Column("id", String(32), nullable=False, unique=True),
    Column("tenant", String(64), nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("memory_bytes", BigInteger, nullable=True),
    Column("compute_percent", Integer, nullable=True),
    Column("model", String(128), nullable=True),
    Column("priority", Integer, nullable=False, default=0),
    Column("preemptible", Boolean, nullable=False, default=False),
    Column("labels", JSON, nullable=False, default=dict),
    Column("state", String(16), nullable=False),
    Column("reason", String(512), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("bound_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    # Grace deadline (epoch seconds) of a bound claim being preempted; NULL otherwise.
    Column("preempt_deadline", Float, nullable=True),
    # A MIG profile ("1g.10gb") the claim asked for explicitly; NULL: whole GPUs or fractions.
    Column("mig", String(32), nullable=True),
    # The client's Idempotency-Key (unique per tenant) and a hash of what it asked for: a retried
    # POST finds its claim here instead of making a second one.
    Column("idempotency_key", String(255), nullable=True),
    Column("request_hash", String(64), nullable=True),
)
Index("ix_claims_state", claims.c.state)
Index("ix_claims_tenant", claims.c.tenant)
Index("ux_claims_tenant_idempotency_key", claims.c.tenant, claims.c.idempotency_key, unique=True)

bindings = Table(
    "bindings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("claim_id", String(32), ForeignKey("claims.id"), nullable=False),
    Column("device_uuid", String(96), nullable=False),
    Column("node", String(255), nullable=False),
    Column("device_index", Integer, nullable=False),
    Column("memory_bytes", BigInteger, nullable=False),
    Column("compute_percent", Integer, nullable=False),
    Column("whole_device", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("missing", Boolean, nullable=False, default=False),
)
Index("ix_bindings_claim", bindings.c.claim_id)
Index("ix_bindings_device_active", bindings.c.device_uuid, bindings.c.active)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("timestamp", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("claim_id", String(32), nullable=True),
    Column("tenant", String(64), nullable=True),  # whose claim it concerns, for per-tenant views
    Column("details", JSON, nullable=False, default=dict),
)
Index("ix_events_claim", events.c.claim_id)

# --- workloads and leases (node agent; see gpupool.store.runtime) ---
leases = Table(
    "leases",
    metadata,
    Column("claim_id", String(32), primary_key=True),
    Column("ttl_s", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

workloads = Table(
    "workloads",
    metadata,
    Column("claim_id", String(32), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("node", String(255), nullable=False),
    Column("command", JSON, nullable=False),
    Column("detached", Boolean, nullable=False),
    Column("state", String(16), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("pid_start_ticks", BigInteger, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("reason", String(512), nullable=False, default=""),
    Column("log_path", String(4096), nullable=True),
    Column("cwd", String(4096), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    # Which node agent runs (or watches) it: only that agent reaps, stops or adopts it.
    Column("agent", String(128), nullable=True),
    # The OS user it runs as (detached workloads of a mapped tenant), for the record.
    Column("run_as", String(32), nullable=True),
    # SHA-256 of the per-workload secret in its processes' environment (pid proof).
    Column("proof_hash", String(64), nullable=True),
)

# Per-tenant idle reclaim timeout in seconds (absent row or NULL: server default; 0: never).
tenant_idle = Table(
    "tenant_idle",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("idle_timeout_s", Float, nullable=True),
)

# Per-tenant quota: guaranteed share and limit, in GPU-equivalents and/or bytes (NULL: not set).
quotas = Table(
    "quotas",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("guarantee_gpus", Float, nullable=True),
    Column("limit_gpus", Float, nullable=True),
    Column("guarantee_memory_bytes", BigInteger, nullable=True),
    Column("limit_memory_bytes", BigInteger, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# One row (id 1): bumped first thing by every transaction that changes claims, bindings, device
# totals or quotas. A process whose cached view is older than this value reloads it (see
# gpupool.store.state); in PostgreSQL the row lock also orders those transactions across processes.
store_generation = Table(
    "store_generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)
# Facts about the store itself, e.g. `pool`: which pool (simulated spec, NVML host, Ray) it serves.
store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(1024), nullable=False),
)

# --- VM hostdevs (the `vms` adapter; see gpupool.store.vm_records) ---
# One row per host device gpupool attached to a libvirt domain for a claim's binding: written
# `attaching` before libvirt is touched, so a restart can finish or undo an interrupted attach.
vm_hostdevs = Table(
    "vm_hostdevs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("claim_id", String(32), ForeignKey("claims.id"), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("domain_uuid", String(36), nullable=False),
    Column("device_uuid", String(96), nullable=False),
    Column("mode", String(16), nullable=False),  # passthrough | mdev | vf
    Column("profile", String(64), nullable=True),
    Column("type_id", String(64), nullable=True),
    Column("address", String(16), nullable=False),  # PCI function: the GPU, its VF, or the mdev parent
    Column("mdev_uuid", String(36), nullable=True),
    Column("state", String(16), nullable=False),  # attaching | attached | detaching
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_vm_hostdevs_claim", vm_hostdevs.c.claim_id)
Index("ix_vm_hostdevs_domain", vm_hostdevs.c.domain_uuid)
