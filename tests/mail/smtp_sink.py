"""A real SMTP server (aiosmtpd) for the mail tests: every message it accepts is written to DIR as a JSON file
(envelope recipients, headers, the decoded text and HTML parts). It takes a free port itself and prints
"ready PORT" once clients can connect.

Usage: python smtp_sink.py DIR [--down N | --silent]
  --down N   the first N connections are accepted and closed at once, as by a server that is down; then the
             SMTP server starts on the same port
  --silent   connections are accepted and never answered (a server that hangs)
"""
import email
import email.policy
import json
import os
import socket
import sys
import time
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        record = {
            "rcpt_to": envelope.rcpt_tos,
            "mail_from": envelope.mail_from,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
        }
        tmp = os.path.join(self.directory, f".{uuid.uuid4().hex}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{time.time_ns()}.json"))
        return "250 OK"


def main():
    directory = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    if mode == "--silent":
        print(f"ready {port}", flush=True)
        held = []
        while True:
            conn, _ = sock.accept()
            held.append(conn)
    if mode == "--down":
        print(f"ready {port}", flush=True)
        for _ in range(int(sys.argv[3])):
            conn, _ = sock.accept()
            conn.close()
    sock.close()
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    if mode != "--down":
        print(f"ready {port}", flush=True)
    try:
        # Ends when the test harness kills it (or closes stdin).
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
