"""The failover timing of a local formation, and why each value is what it is.

pg_auto_failover's defaults (health check every 5 s, a node unhealthy after 20 s without a
report, 30 s for a primary to demote itself) make a failover take about 35 s. A trading
ledger stops taking writes for that long, so the local formation detects a dead primary in
about 2 s and promotes it some 6 s later. What that trades: a primary that stalls for more
than ~2 s (a long fsync, a saturated machine, a network hiccup between it and the monitor)
is failed over although it would have come back, and clients see a failover they did not
need. Nothing acknowledged is lost by a needless failover (synchronous replication), it
only costs availability.
"""

from __future__ import annotations

# On the monitor (ALTER SYSTEM on its pg_auto_failover database, then a reload).
MONITOR_SETTINGS: dict[str, int] = {
    # probe every node every second, giving up on one probe after 1 s, retried once after 0.5 s
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    # a node whose keeper has not reported for 2 s and fails its health check is unhealthy
    "pgautofailover.node_considered_unhealthy_timeout": 2000,
    # how long the standby waits for an unreachable primary to have demoted itself before it
    # is promoted: must stay above the keepers' network_partition_timeout (below), else a
    # primary cut off from the monitor could still accept writes next to a new primary
    "pgautofailover.primary_demote_timeout": 3000,
}

# In each keeper's configuration (pg_autoctl config set).
KEEPER_SETTINGS: dict[str, str] = {
    # a primary that can reach neither the monitor nor any standby for 2 s demotes itself
    # (its keeper checks about every second: done before primary_demote_timeout runs out,
    # which starts only after the monitor found the primary unhealthy, itself ~2-4 s)
    "timeout.network_partition_timeout": "2",
}
