"""The link between the two sites: MirrorMaker 2 over mutual TLS, least-privileged (docs/link.md).

Each site runs one MirrorMaker that pulls the counterpart's allow-listed topics into its own cluster::

    init_link_pki(settings, passphrase)   # the site's link CA + broker/client certificates (`xborder link certs`)
    LinkMirror(settings).start()          # `xborder link start`: waits until the replication task runs
    asyncio.run(measure_lag(settings))    # `xborder link status`: per-flow lag in records and seconds
    LinkMirror(settings).stop()
"""

from xborder_gateway.link._lag import FlowLag, LinkReport, PartitionLag, measure_lag
from xborder_gateway.link._mirror import LinkMirror, MirrorStatus, topics_regex
from xborder_gateway.link._pki import (
    LinkCa,
    client_principal,
    init_link_pki,
    link_client_ssl_context,
    link_files,
    own_link_ca,
)

__all__ = [
    "FlowLag",
    "LinkCa",
    "LinkMirror",
    "LinkReport",
    "MirrorStatus",
    "PartitionLag",
    "client_principal",
    "init_link_pki",
    "link_client_ssl_context",
    "link_files",
    "measure_lag",
    "own_link_ca",
    "topics_regex",
]
