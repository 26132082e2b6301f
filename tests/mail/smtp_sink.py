"""A real SMTP server (aiosmtpd) for the mail tests: every message it accepts is written to DIR as a JSON file
(envelope recipients, headers, the decoded text and HTML parts). Prints "ready" once it listens.

Usage: python smtp_sink.py DIR PORT
"""
import asyncio
import email
import email.policy
import json
import os
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
            "header_names": [k for k in msg.keys()],
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
        }
        tmp = os.path.join(self.directory, f".{uuid.uuid4().hex}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{time.time_ns()}.json"))
        return "250 OK"


def main():
    directory, port = sys.argv[1], int(sys.argv[2])
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        # Ends when the test harness kills it (or closes stdin).
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
