"""Choreographed checkout latency: mutation sent -> CheckoutSucceeded stored
(its emitted_at), closed loop per client. Usage: URL CLIENTS PER_CLIENT"""
import json, sys, threading, time, urllib.request, uuid, datetime

url, clients, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def gql(q, v=None):
    req = urllib.request.Request(url + "/graphql", json.dumps({"query": q, "variables": v or {}}).encode(), {"content-type": "application/json"})
    body = json.load(urllib.request.urlopen(req))
    if "errors" in body: raise RuntimeError(body)
    return body["data"]

pid = gql('mutation { createProduct(name: "bench", priceCents: 100, stock: 1000000) { id } }')["createProduct"]["id"]
results = []
lock = threading.Lock()
def ts(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
def client():
    cid = str(uuid.uuid4())
    for _ in range(per):
        t0 = time.time()
        cid_ = gql('mutation($i: CheckoutInput!) { checkoutChoreographed(input: $i) { checkoutId } }',
                   {"i": {"clientId": cid, "items": [{"productId": pid, "quantity": 1}]}})["checkoutChoreographed"]["checkoutId"]
        while True:
            st = gql('query($id: ID!) { checkout(id: $id) { status } }', {"id": cid_})["checkout"]["status"]
            if st != "PENDING": break
            time.sleep(0.002)
        with lock: results.append((cid_, t0, st))
start = time.time()
threads = [threading.Thread(target=client) for _ in range(clients)]
[t.start() for t in threads]; [t.join() for t in threads]
wall = time.time() - start
lat = []
events = 0
for cid_, t0, st in results:
    evs = gql('query($id: ID!) { checkoutEvents(checkoutId: $id) { type emittedAt } }', {"id": cid_})["checkoutEvents"]
    events += len(evs)
    end = [e for e in evs if e["type"] in ("CheckoutSucceeded", "CheckoutFailed")][0]
    lat.append((ts(end["emittedAt"]) - t0) * 1000)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
ok = sum(1 for r in results if r[2] == "SUCCEEDED")
print(f"clients={clients} checkouts={len(lat)} succeeded={ok} wall={wall:.1f}s throughput={len(lat)/wall:.0f}/s events={events} ({events/wall:.0f} events/s) "
      f"P50={p(0.5):.1f}ms P95={p(0.95):.1f}ms P99={p(0.99):.1f}ms max={lat[-1]:.1f}ms")
