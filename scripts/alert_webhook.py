"""A webhook receiver for Alertmanager in the alert test: every POSTed notification is
appended to FILE as one JSON line (flushed at once); GET answers 200 (the test's "is it up").

usage: python3 scripts/alert_webhook.py PORT FILE   (listens on 127.0.0.1 only)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def main() -> None:
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        raise SystemExit(__doc__)
    port, path = int(sys.argv[1]), sys.argv[2]

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                notification = json.loads(body)
            except ValueError:
                self.send_error(400, "not JSON")
                return
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(notification) + "\n")
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write("webhook: " + format % args + "\n")

    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()


if __name__ == "__main__":
    main()
