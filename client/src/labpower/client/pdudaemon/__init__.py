"""pdudaemon compatibility: ``labpower-pdudaemon`` (pdudaemon's HTTP and TCP listener in
front of labpowerd), ``labpower import-pdudaemon`` and a pdudaemon driver ``labpower``.

Nothing here imports pdudaemon: the listener speaks its wire protocols, and the driver has
the surface pdudaemon's runner calls.
"""
