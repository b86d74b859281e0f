"""Network power devices: SNMP PDUs, HTTP PDUs and smart plugs."""
