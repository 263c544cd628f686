//! Request limits the schema builder does not have, and one code on every
//! error: an alias limit (an alias bomb is refused before it runs), and
//! `extensions.code` = `BAD_USER_INPUT` on the errors async-graphql raises
//! itself (syntax, validation, depth, complexity), which carry none.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensions, Pos, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe},
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};
use futures::{StreamExt, stream::BoxStream};

/// Most aliased fields one document may hold.
pub const MAX_ALIASES: usize = 30;

#[derive(Debug, Default)]
pub struct Guard;

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Guard)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Guard {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> async_graphql::Response {
        let mut response = next.run(ctx).await;
        response.errors.iter_mut().for_each(with_code);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, async_graphql::Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, async_graphql::Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                response.errors.iter_mut().for_each(with_code);
                response
            })
            .boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > MAX_ALIASES {
            let e = crate::GatewayError::BadUserInput(format!("{aliases} aliases in one query; at most {MAX_ALIASES}"));
            return Err(e.extend().into_server_error(Pos::default()));
        }
        Ok(document)
    }
}

fn with_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", "BAD_USER_INPUT");
    }
}

fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations: Vec<&SelectionSet> = match &document.operations {
        DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node.selection_set.node).collect(),
    };
    let fragments = document.fragments.values().map(|f| &f.node.selection_set.node);
    operations.into_iter().chain(fragments).map(in_set).sum()
}

fn in_set(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => usize::from(field.node.alias.is_some()) + in_set(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}
