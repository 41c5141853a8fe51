"""NetFlow v5 / v9 / IPFIX collection into per-service usage.

Pure layer (no sockets, no asyncio, no database, no logging):

- ``flowcollector.codec``: ``Decoder`` turns datagrams into ``FlowBatch`` es, keeping
  templates, sampling rates and sequence numbers per exporting domain;
- ``flowcollector.templates``: template validation and compilation (used by the codec);
- ``flowcollector.addressmap``: ``ServiceMap`` (address -> service, time-aware) and
  ``OwnPrefixes`` (the ISP's own address space);
- ``flowcollector.aggregate``: ``Aggregator`` (batches -> per-service, per-minute byte and packet
  counters); ``flowcollector.bulk``: its NumPy path.

The daemon on top, in the roles every component has (docs/architecture.md): ``transport``
moves datagrams in, ``loader`` keeps the maps current from PostgreSQL, ``writer`` swaps the
aggregator's counters out on a timer and writes them with COPY, ``store`` holds the SQL.
"""
