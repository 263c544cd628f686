"""A stand-in OTLP/HTTP trace collector, for looking at one checkout's trace
without Jaeger (standard library only).

  python3 scripts/otlp_spans.py serve 4318 spans.jsonl   # collect: point OTEL_EXPORTER_OTLP_ENDPOINT at http://127.0.0.1:4318
  python3 scripts/otlp_spans.py show spans.jsonl <trace_id>   # the span tree of one trace, with timings

`serve` decodes each ExportTraceServiceRequest (protobuf) and appends one
JSON line per span: trace, span, parent, name, service, start and end (ns).
"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def fields(buf):
    """Yields (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wire == 2:
            size, i = varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def attribute(kv):
    """A KeyValue as (key, value) for string and integer values."""
    key = value = None
    for m, _, v in fields(kv):
        if m == 1:
            key = v.decode()
        elif m == 2:
            for k, _, x in fields(v):
                value = x.decode() if k == 1 else x if k == 3 else value
    return key, value


def service_name(resource):
    attrs = dict(attribute(kv) for n, _, kv in fields(resource) if n == 1)
    return attrs.get("service.name", "?")


def spans(request):
    for n, _, resource_spans in fields(request):
        if n != 1:
            continue
        service = "?"
        for m, _, part in fields(resource_spans):
            if m == 1:
                service = service_name(part)
            elif m == 2:
                for k, _, span in fields(part):
                    if k != 2:
                        continue
                    s = {"service": service, "parent": "", "attrs": {}}
                    for f, _, v in fields(span):
                        if f == 1: s["trace"] = v.hex()
                        elif f == 2: s["span"] = v.hex()
                        elif f == 4: s["parent"] = v.hex()
                        elif f == 5: s["name"] = v.decode()
                        elif f == 7: s["start"] = v
                        elif f == 8: s["end"] = v
                        elif f == 9:
                            key, value = attribute(v)
                            s["attrs"][key] = value
                    yield s


def serve(port, path):
    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with open(path, "a") as out:
                for s in spans(body):
                    out.write(json.dumps(s) + "\n")
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", port), Collector).serve_forever()


def show(path, trace):
    found = [json.loads(l) for l in open(path) if json.loads(l).get("trace") == trace]
    if not found:
        sys.exit(f"no span of trace {trace}")
    t0 = min(s["start"] for s in found)
    ids = {s["span"] for s in found}
    children = {}
    for s in found:
        children.setdefault(s["parent"] if s["parent"] in ids else None, []).append(s)

    def walk(parent, depth):
        for s in sorted(children.get(parent, []), key=lambda s: s["start"]):
            a = s.get("attrs", {})
            detail = " ".join(str(a[k]) for k in ("pattern", "service", "operation", "consumer", "event_type") if k in a)
            print(f"{(s['start'] - t0) / 1e6:8.2f} ms  {(s['end'] - s['start']) / 1e6:8.2f} ms  {'  ' * depth}{s['name']} {detail}  [{s['service']}]")
            walk(s["span"], depth + 1)

    print(f"trace {trace}: {len(found)} spans   (start offset, duration, span [process])")
    walk(None, 0)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        show(sys.argv[2], sys.argv[3])
