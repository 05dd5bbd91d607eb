"""A local single-node Apache Kafka (KRaft, combined broker + controller) for the embedded default.

The broker's jars come from Maven Central through the machine's Maven into a cache shared by every home
(``settings.kafka_cache``); its configuration, data, logs and pid file live under ``<home>/kafka``.
Nothing here talks to Kafka's protocol: readiness is "the process logged *Kafka Server started* and its
client port accepts connections".

    LocalKafka(settings).start()   # idempotent: a running broker is left as it is
    LocalKafka(settings).status()  # BrokerStatus(running, pid, bootstrap, ...)
    LocalKafka(settings).stop()    # SIGTERM, wait, SIGKILL only as a last resort
"""

from xborder_gateway.kafka_local._launcher import BrokerStatus, LocalKafka, java_major_version

__all__ = ["BrokerStatus", "LocalKafka", "java_major_version"]
