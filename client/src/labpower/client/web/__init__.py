"""``labpower-web``: a read-only page of the lab and Prometheus metrics, beside labpowerd.

A separate service rather than a port in labpowerd: the daemon that owns the relays keeps
only its Unix socket (``PrivateNetwork=yes``), and this one reads it over varlink like any
client, with its own user and its own sandbox. Needs the ``web`` extra (prometheus-client).
"""
