"""Open loop: CLIENTS threads fire PER mutations each without waiting; then
wait until every checkout ended; report the workers' throughput."""
import json, sys, threading, time, urllib.request, uuid, datetime
url, clients, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def gql(q, v=None):
    req = urllib.request.Request(url + "/graphql", json.dumps({"query": q, "variables": v or {}}).encode(), {"content-type": "application/json"})
    body = json.load(urllib.request.urlopen(req))
    if "errors" in body: raise RuntimeError(body)
    return body["data"]
def ts(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
pid = gql('mutation { createProduct(name: "burst", priceCents: 100, stock: 10000000) { id } }')["createProduct"]["id"]
ids = []; lock = threading.Lock()
def client():
    cid = str(uuid.uuid4()); mine = []
    for _ in range(per):
        mine.append(gql('mutation($i: CheckoutInput!) { checkoutChoreographed(input: $i) { checkoutId } }',
                        {"i": {"clientId": cid, "items": [{"productId": pid, "quantity": 1}]}})["checkoutChoreographed"]["checkoutId"])
    with lock: ids.extend(mine)
t0 = time.time()
th = [threading.Thread(target=client) for _ in range(clients)]; [t.start() for t in th]; [t.join() for t in th]
sent = time.time() - t0
# Wait for the last checkouts sent (the queue drains in order, near enough).
tail = ids[-50:]
while any(gql('query($id: ID!) { checkout(id: $id) { status } }', {"id": i})["checkout"]["status"] == "PENDING" for i in tail):
    time.sleep(0.2)
# exact end: the latest terminal event among a sample + all
ends = []
for i in ids[::max(1, len(ids)//500)] + ids[-200:]:
    evs = gql('query($id: ID!) { checkoutEvents(checkoutId: $id) { type emittedAt } }', {"id": i})["checkoutEvents"]
    ends += [ts(e["emittedAt"]) for e in evs if e["type"].startswith("Checkout") and e["type"] != "CheckoutInitiated"]
done = max(ends) - t0
print(f"{len(ids)} checkouts accepted in {sent:.1f}s ({len(ids)/sent:.0f}/s); all ended {done:.1f}s after the first send: {len(ids)/done:.0f} checkouts/s, {4*len(ids)/done:.0f} events/s")
