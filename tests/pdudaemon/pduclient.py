"""pduclient, as LAVA's device dictionaries run it:
``pduclient --daemon HOST --hostname PDU --port N --command reboot|on|off [--delay S]``.

Written from pduclient's documented behaviour (it is not in pdudaemon's package): the message
``<pdu> <port> <command>[ <delay>]`` sent once over TCP to port 16421 with no newline, the
reply (up to 16 KiB, stripped) must be ``ack``. Exit 0 on ack, 127 on any other reply, 1 when
the daemon cannot be reached or an option is missing or wrong.
"""

from __future__ import annotations

import argparse
import socket
import sys

PORT = 16421
COMMANDS = ("reboot", "on", "off")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pduclient")
    parser.add_argument("--daemon")
    parser.add_argument("--hostname")
    parser.add_argument("--port")
    parser.add_argument("--command")
    parser.add_argument("--delay", type=int)
    args = parser.parse_args(argv)
    if not (args.daemon and args.hostname and args.port and args.command):
        print("Missing option, try -h for help")
        return 1
    if args.command not in COMMANDS:
        print(f"Unknown pdu command: {args.command}")
        return 1
    message = f"{args.hostname} {args.port} {args.command}"
    if args.delay:
        message += f" {args.delay}"
    try:
        with socket.create_connection((args.daemon, PORT)) as sock:
            sock.send(message.encode())
            reply = sock.recv(16384).strip().decode()
    except (OSError, UnicodeDecodeError):
        print("Error sending command, wrong daemon hostname?")
        return 1
    if reply == "ack":
        print("Command sent successfully.")
        return 0
    print(f"Error sending command! {args.daemon} replied: {reply}")
    return 127


if __name__ == "__main__":
    sys.exit(main())
