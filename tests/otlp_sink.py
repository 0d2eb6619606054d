"""An OTLP/HTTP trace receiver for the end-to-end tests: it accepts
`POST /v1/traces` with `Content-Type: application/json` (the OTLP JSON encoding of an
ExportTraceServiceRequest), checks the shape the OTLP specification gives it (hex trace
and span ids of 32 and 16 digits, nanosecond times as decimal strings, a numeric kind,
typed attribute values), answers 200 with an empty ExportTraceServiceResponse, and writes
every span, flattened with its resource's service.name, as one JSON line to FILE. A request
that breaks the shape gets 400 and is written to FILE.errors.

    python3 tests/otlp_sink.py --port PORT --file FILE
"""
import argparse
import json
import re
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
NANOS = re.compile(r"^[0-9]{1,20}$")


def check_span(span):
    assert HEX32.match(span["traceId"]), "traceId"
    assert HEX16.match(span["spanId"]), "spanId"
    if "parentSpanId" in span:
        assert HEX16.match(span["parentSpanId"]), "parentSpanId"
    assert isinstance(span["name"], str) and span["name"], "name"
    assert span["kind"] in (0, 1, 2, 3, 4, 5), "kind"
    assert NANOS.match(span["startTimeUnixNano"]), "startTimeUnixNano"
    assert NANOS.match(span["endTimeUnixNano"]), "endTimeUnixNano"
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]), "end before start"
    for a in span.get("attributes", []):
        assert isinstance(a["key"], str), "attribute key"
        (kind,) = a["value"].keys()
        assert kind in ("stringValue", "intValue", "boolValue", "doubleValue"), kind
    assert span["status"]["code"] in (0, 1, 2), "status"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                assert self.path == "/v1/traces", "path " + self.path
                assert self.headers.get("content-type", "").startswith("application/json"), "content type"
                request = json.loads(body)
                lines = []
                for rs in request["resourceSpans"]:
                    attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                    service = attrs["service.name"]["stringValue"]
                    for ss in rs["scopeSpans"]:
                        for span in ss["spans"]:
                            check_span(span)
                            lines.append(dict(span, service=service))
            except (AssertionError, KeyError, ValueError, TypeError) as e:
                with open(args.file + ".errors", "a") as out:
                    out.write(repr(e) + " " + body.decode("utf-8", "replace") + "\n")
                self.send_response(400)
                self.end_headers()
                return
            with open(args.file, "a") as out:
                for line in lines:
                    out.write(json.dumps(line) + "\n")
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
