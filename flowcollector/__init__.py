"""NetFlow v5 / v9 / IPFIX collection into per-service usage.

Pure layer (no sockets, no asyncio, no database, no logging):

- ``flowcollector.codec``: ``Decoder`` turns datagrams into ``FlowBatch`` es, keeping
  templates, sampling rates and sequence numbers per exporting domain;
- ``flowcollector.templates``: template validation and compilation (used by the codec);
- ``flowcollector.aggregate``: ``ServiceMap`` (address -> service, time-aware) and
  ``Aggregator`` (batches -> per-service, per-minute byte and packet counters).

The daemon on top moves datagrams in, swaps the aggregator's counters out on a timer and
writes them with COPY.
"""
