"""USB HID relay boards through hidapi: dcttech USBRelay (``usbrelay``), LCUS HID
(``lcus-hid``) and Yepkit YKUSH (``ykush``). The hidapi library is imported only when a board
is opened, so these modules import without it."""
