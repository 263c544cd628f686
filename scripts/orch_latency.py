"""Orchestrated checkout latency as a client sees it: the mutation's round
trip (it returns when the saga is terminal), closed loop per client.
Usage: URL CLIENTS PER_CLIENT"""
import json, sys, threading, time, urllib.request, uuid

url, clients, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def gql(q, v=None):
    req = urllib.request.Request(url + "/graphql", json.dumps({"query": q, "variables": v or {}}).encode(), {"content-type": "application/json"})
    body = json.load(urllib.request.urlopen(req))
    if "errors" in body: raise RuntimeError(body)
    return body["data"]

pid = gql('mutation { createProduct(name: "bench", priceCents: 100, stock: 1000000) { id } }')["createProduct"]["id"]
lat, states, lock = [], [], threading.Lock()
def client():
    cid = str(uuid.uuid4())
    for _ in range(per):
        t0 = time.time()
        state = gql('mutation($i: CheckoutInput!) { checkoutOrchestrated(input: $i) { state } }',
                    {"i": {"clientId": cid, "items": [{"productId": pid, "quantity": 1}]}})["checkoutOrchestrated"]["state"]
        with lock: lat.append((time.time() - t0) * 1000); states.append(state)
start = time.time()
threads = [threading.Thread(target=client) for _ in range(clients)]
[t.start() for t in threads]; [t.join() for t in threads]
wall = time.time() - start
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"clients={clients} checkouts={len(lat)} completed={states.count('COMPLETED')} wall={wall:.1f}s throughput={len(lat)/wall:.0f}/s "
      f"P50={p(0.5):.1f}ms P95={p(0.95):.1f}ms P99={p(0.99):.1f}ms max={lat[-1]:.1f}ms")
