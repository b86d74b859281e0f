"""Modbus relay boards (RTU on a serial port, TCP): coils or holding registers, through
pymodbus's framers and PDUs (the extra ``labpower-backends[modbus]``)."""
