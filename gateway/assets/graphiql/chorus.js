// GraphiQL as Chorus serves it: every asset from the gateway itself (no CDN,
// so it works offline and under `script-src 'self'`), opened on example
// operations for both saga styles and their live progress.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var auth = root.getAttribute("data-auth") === "on";
  var client = self.crypto && crypto.randomUUID ? crypto.randomUUID() : "00000000-0000-4000-8000-000000000001";
  var input = JSON.stringify({
    input: { clientId: client, items: [{ productId: "<a product id from the Products query>", quantity: 1 }] },
  }, null, 2);

  var tabs = [
    {
      query: [
        "# Orchestrated: one orchestrator drives the saga and answers once it has ended.",
        "# Run Products (below), paste a product id into the variables, then run this.",
        "mutation CheckoutOrchestrated($input: CheckoutInput!) {",
        "  checkoutOrchestrated(input: $input) {",
        "    id state failureReason",
        "    transitions { from to reason at }",
        "  }",
        "}",
        "",
        "query Products {",
        "  products { id name priceCents stock reserved sold }",
        "}",
      ].join("\n"),
      variables: input,
    },
    {
      query: [
        "# Choreographed: the gateway publishes CheckoutInitiated and answers at once;",
        "# the workers take it from there. Follow it with Checkout (or the Live tab).",
        "mutation CheckoutChoreographed($input: CheckoutInput!) {",
        "  checkoutChoreographed(input: $input) { checkoutId status }",
        "}",
        "",
        "query Checkout($id: ID!) {",
        "  checkout(id: $id) { id pattern status orderId failureReason }",
        "  checkoutEvents(checkoutId: $id) { sequence type emittedAt payload }",
        "}",
      ].join("\n"),
      variables: input,
    },
    {
      query: [
        "# Live: every event of one checkout (either style), replayed from its first,",
        "# then as it happens; completes when the checkout ends.",
        "subscription Progress($id: ID!) {",
        "  checkoutProgress(checkoutId: $id) { sequence type pattern emittedAt payload }",
        "}",
        "",
        "# Each move of an orchestrated saga's state machine.",
        "subscription Transitions($id: ID) {",
        "  sagaTransitions(sagaId: $id) { sagaId from to reason at }",
        "}",
      ].join("\n"),
      variables: JSON.stringify({ id: "<a checkout id>" }, null, 2),
    },
  ];
  if (auth) {
    tabs.forEach(function (tab) {
      tab.headers = JSON.stringify({ Authorization: "Bearer <your token>" }, null, 2);
    });
  }

  function url(path, socket) {
    var u = new URL(path, window.location.origin);
    if (socket) u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  }

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({ url: url("/graphql"), subscriptionUrl: url("/graphql", true) }),
      defaultTabs: tabs,
      // The first tab's editors start from these, not from its tab.
      query: tabs[0].query,
      variables: tabs[0].variables,
      headers: tabs[0].headers,
      defaultEditorToolsVisibility: auth ? "headers" : "variables",
      shouldPersistHeaders: false,
    })
  );
})();
