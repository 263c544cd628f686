//! Request limits the schema builder does not have, the rate limit, and one code on every
//! error: a nesting limit checked on the query text before the parser runs
//! (the parser recurses once per level: 2,000 nested `[` overflowed the
//! stack and aborted the whole process), an alias limit (an alias bomb is
//! refused before it runs), and `extensions.code` = `BAD_USER_INPUT` on the
//! errors async-graphql raises itself (syntax, validation, depth,
//! complexity), which carry none.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    ErrorExtensions, Pos, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe},
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};
use futures::{StreamExt, stream::BoxStream};

use crate::{
    auth::Principal,
    limits::{ClientIp, RateLimiter},
};

/// Most aliased fields one document may hold.
pub const MAX_ALIASES: usize = 30;
/// Deepest nesting of `{`, `[` and `(` the query text may have: far more
/// than any real query (GraphiQL's introspection needs about 20), far less
/// than what would exhaust a thread's stack in the parser.
pub const MAX_NESTING: usize = 64;

/// The schema's extension: the limits above, and the rate limit on every
/// operation (over HTTP or a WebSocket alike).
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// `CHORUS_RATE_LIMIT`, when set.
    pub rate: Option<RateLimiter>,
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

impl Guard {
    /// `RATE_LIMITED`, with when to come back, for a client over its rate.
    /// Who and from where: the request's data (HTTP), else the socket's.
    fn over_rate(&self, ctx: &ExtensionContext<'_>, request: &async_graphql::Request) -> Option<ServerError> {
        fn of<T: std::any::Any>(request: &async_graphql::Request) -> Option<&T> {
            request.data.get(&std::any::TypeId::of::<T>()).and_then(|d| d.downcast_ref::<T>())
        }
        let who = of::<Principal>(request).or_else(|| ctx.data_opt::<Principal>());
        let ip = of::<ClientIp>(request).or_else(|| ctx.data_opt::<ClientIp>()).copied();
        let wait = self.rate.as_ref()?.check(who, ip).err()?;
        let e = crate::GatewayError::RateLimited { retry_after: wait.max(std::time::Duration::from_secs(1)) };
        metrics::counter!("gateway_rate_limited_total").increment(1);
        Some(e.extend().into_server_error(Pos::default()))
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

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        // Every operation, queries, mutations and subscriptions, over HTTP
        // or a WebSocket, comes through here once, before it is parsed.
        if let Some(e) = self.over_rate(ctx, &request) {
            return Err(e);
        }
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Every path (GET, POST, WebSocket `subscribe`) comes through here
        // before the parser sees the text.
        check_nesting(query).map_err(|e| e.extend().into_server_error(Pos::default()))?;
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > MAX_ALIASES {
            let e = crate::GatewayError::BadUserInput(format!("{aliases} aliases in one query; at most {MAX_ALIASES}"));
            return Err(e.extend().into_server_error(Pos::default()));
        }
        Ok(document)
    }
}

/// Refuses query text that nests `{`, `[` or `(` deeper than
/// [`MAX_NESTING`] (strings and comments do not count). One pass, no
/// recursion, so any input is safe to give it.
pub fn check_nesting(query: &str) -> Result<(), crate::GatewayError> {
    let bytes = query.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(crate::GatewayError::BadUserInput(format!("the query nests deeper than {MAX_NESTING} levels")));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn with_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", "BAD_USER_INPUT");
    }
}

/// Aliases as the query would run them: a fragment counts once per place
/// it is spread (three nested fragments of ten aliases are a thousand).
fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations: Vec<&SelectionSet> = match &document.operations {
        DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node.selection_set.node).collect(),
    };
    let fragments: HashMap<&str, &SelectionSet> =
        document.fragments.iter().map(|(name, f)| (name.as_str(), &f.node.selection_set.node)).collect();
    let mut memo = HashMap::new();
    operations.into_iter().fold(0, |sum, set| sum.saturating_add(in_set(set, &fragments, &mut memo, 0)))
}

fn in_set<'a>(set: &'a SelectionSet, fragments: &HashMap<&'a str, &'a SelectionSet>, memo: &mut HashMap<&'a str, usize>, depth: usize) -> usize {
    // Deeper than any text may nest: a fragment that spreads itself
    // (validation, which refuses cycles, has not run yet).
    if depth > MAX_NESTING {
        return usize::MAX;
    }
    set.items.iter().fold(0usize, |sum, item| {
        let here = match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()).saturating_add(in_set(&field.node.selection_set.node, fragments, memo, depth + 1))
            }
            Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node, fragments, memo, depth + 1),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match (memo.get(name), fragments.get_key_value(name)) {
                    (Some(&n), _) => n,
                    (None, Some((&key, &fragment))) => {
                        let n = in_set(fragment, fragments, memo, depth + 1);
                        memo.insert(key, n);
                        n
                    }
                    (None, None) => 0,
                }
            }
        };
        sum.saturating_add(here)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = |n: usize| format!("{{ product(id: {}{}) {{ id }} }}", "[".repeat(n), "]".repeat(n));
        assert!(check_nesting(&deep(MAX_NESTING - 3)).is_ok());
        assert!(check_nesting(&deep(MAX_NESTING)).is_err());
        assert!(check_nesting(&deep(1_000_000)).is_err());
        let brackets = "[".repeat(500);
        let quoted = format!("{{ a(s: \"{brackets}\") b(s: \"\"\"{brackets}\"\"\") }} # {brackets}\n");
        assert!(check_nesting(&quoted).is_ok(), "{quoted}");
        assert!(check_nesting("\"unterminated [[[[").is_ok());
    }
}
