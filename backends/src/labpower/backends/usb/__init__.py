"""USB devices driven through pyusb: per-port power of USB hubs (``usbhub``). pyusb is
imported only when a hub is opened, so these modules import without it."""
