"""Backends for relay boards behind a (USB) serial port: LCUS, Numato, KMTronic, Devantech.

They need pyserial (the ``serial`` extra). Each module keeps its protocol as plain functions
(frame in, bytes out; bytes in, states out) next to the backend class, so the frames are
tested without a port.
"""
