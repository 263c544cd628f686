//! Live views of checkouts (WebSocket, `graphql-transport-ws` or `graphql-ws`).

use async_graphql::{Context, ErrorExtensions, ID, ResultExt, Subscription};
use chorus_domain::CheckoutId;
use futures::{Stream, StreamExt};

use crate::{
    GatewayError,
    request::{caller, owned_by, principal, state, until_expiry},
    inputs::parse_id,
    types::SagaTransition,
    views::CheckoutEvent,
};

pub struct SubscriptionRoot;

/// Live views of checkouts (WebSocket, `graphql-transport-ws` or `graphql-ws`).
#[Subscription]
impl SubscriptionRoot {
    /// Every event of one checkout, from its first, then live as they are
    /// stored, each once and in order; completes after the event that ends
    /// the checkout. Opened after the checkout ended, it replays everything
    /// and completes.
    async fn checkout_progress(
        &self,
        ctx: &Context<'_>,
        checkout_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CheckoutEvent>> + use<>> {
        let state = state(ctx);
        let who = principal(ctx);
        async {
            who.authenticated()?;
            let id: CheckoutId = parse_id("checkoutId", &checkout_id)?;
            let live = state.hub.checkout(&state.events, id, &caller(ctx, &who)).await?;
            Ok::<_, GatewayError>(owned_by(live, who).map(|e| e.map(|e| CheckoutEvent::from((*e).clone())).map_err(|e| e.extend())))
        }
        .await
        .map(|stream| until_expiry(ctx, stream))
        .extend()
    }

    /// The transitions of one orchestrated saga (replayed, then live;
    /// completes at its terminal state), or of every saga from now on
    /// (admin) when no id is given.
    async fn saga_transitions(
        &self,
        ctx: &Context<'_>,
        saga_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SagaTransition>> + use<>> {
        let state = state(ctx);
        let who = principal(ctx);
        async {
            who.authenticated()?;
            let live = match saga_id {
                Some(id) => {
                    let id: CheckoutId = parse_id("sagaId", &id)?;
                    owned_by(state.hub.checkout(&state.events, id, &caller(ctx, &who)).await?, who).boxed()
                }
                None => {
                    who.admin()?;
                    state.hub.all(&caller(ctx, &who))?.boxed()
                }
            };
            Ok::<_, GatewayError>(live.flat_map(|e| {
                let items = match e {
                    Ok(e) => SagaTransition::from_event(&e).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e.extend())],
                };
                futures::stream::iter(items)
            }))
        }
        .await
        .map(|stream| until_expiry(ctx, stream))
        .extend()
    }

    /// Every event stored from now on, of every checkout (admin).
    async fn all_checkout_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CheckoutEvent>> + use<>> {
        let state = state(ctx);
        let who = principal(ctx);
        async {
            who.admin()?;
            let live = state.hub.all(&caller(ctx, &who))?;
            Ok::<_, GatewayError>(live.map(|e| e.map(|e| CheckoutEvent::from((*e).clone())).map_err(|e| e.extend())))
        }
        .await
        .map(|stream| until_expiry(ctx, stream))
        .extend()
    }
}
