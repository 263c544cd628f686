//! What one client may hold and send: connections (all together and per IP
//! address), operations per unit of time (`CHORUS_RATE_LIMIT`, as Kong's
//! rate-limiting plugin offered) and the size of a response. The HTTP
//! timeouts are in [`crate::serve`], the query limits in [`crate::guard`].

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chorus_runtime::config::{Config, RateLimit};
use governor::{Quota, clock::Clock};

use crate::auth::Principal;

/// The gateway's limits, from the configuration (DESIGN §6).
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a request's headers, and its body, may take to arrive; an
    /// idle keep-alive connection is closed after as long.
    pub read_timeout: Duration,
    /// How long a WebSocket may take to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// How often a WebSocket is pinged; two intervals of silence close it.
    pub ws_ping_interval: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Largest response body over HTTP, in bytes.
    pub max_response_bytes: usize,
    pub rate_limit: Option<RateLimit>,
    /// How long one ask of the orchestrator for a checkout may go
    /// unanswered before it is asked again: the saga lease. A dead
    /// replica's sagas are taken over once their lease lapses and not
    /// before, so asking sooner gains nothing and asking later only waits
    /// (`chorus bench --crash` showed checkouts waiting 10 s on a 3 s lease).
    pub ask_again_after: Duration,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Limits {
            read_timeout: config.http_read_timeout,
            ws_init_timeout: config.ws_init_timeout,
            ws_ping_interval: config.ws_ping_interval,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            max_response_bytes: config.max_response_bytes,
            rate_limit: config.rate_limit,
            ask_again_after: config.saga_lease,
        }
    }
}

/// The address a request or WebSocket came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// Counts open connections; [`ConnectionGate::admit`] refuses one over a cap.
#[derive(Debug)]
pub struct ConnectionGate {
    max: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Total => "max_connections",
            Refused::PerIp => "max_connections_per_ip",
        }
    }
}

/// An admitted connection; dropping it (the connection ended) frees its place.
#[derive(Debug)]
pub struct Admitted {
    gate: Arc<ConnectionGate>,
    ip: IpAddr,
}

impl ConnectionGate {
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(ConnectionGate { max: limits.max_connections, max_per_ip: limits.max_connections_per_ip, open: Mutex::default() })
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *open;
        if *total >= self.max {
            return Err(Refused::Total);
        }
        let from_ip = per_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        *from_ip += 1;
        *total += 1;
        Ok(Admitted { gate: self.clone(), ip })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Whom an operation is counted against: the token's subject, else the
/// address it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum RateKey {
    Client(chorus_domain::ClientId),
    Admin(String),
    Ip(IpAddr),
}

type Keyed = governor::RateLimiter<RateKey, governor::state::keyed::DefaultKeyedStateStore<RateKey>, governor::clock::DefaultClock>;

/// `CHORUS_RATE_LIMIT`: a token bucket per client (GCRA, by `governor`),
/// as full as the limit at first, refilled evenly over its unit.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limiter: Arc<Keyed>,
    checks: Arc<AtomicU64>,
}

/// How many checks between two sweeps of the buckets that are full again
/// (clients gone quiet), so that the table does not grow for ever.
const SWEEP_EVERY: u64 = 4096;

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        let one_per = limit.per / limit.count.get();
        let quota = Quota::with_period(one_per.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(limit.count);
        RateLimiter { limiter: Arc::new(governor::RateLimiter::keyed(quota)), checks: Arc::default() }
    }

    /// `Err(wait)` when `who` (from `ip`) is over the limit: how long until
    /// it may run one more. No address and no token (the schema run
    /// in-process) is not limited.
    pub fn check(&self, who: Option<&Principal>, ip: Option<ClientIp>) -> Result<(), Duration> {
        let key = match (who, ip) {
            (Some(Principal::Client(id)), _) => RateKey::Client(*id),
            (Some(Principal::Admin(sub)), _) => RateKey::Admin(sub.clone()),
            (_, Some(ClientIp(ip))) => RateKey::Ip(ip),
            (_, None) => return Ok(()),
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).map_err(|not_until| not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> Limits {
        Limits {
            read_timeout: Duration::from_secs(1),
            ws_init_timeout: Duration::from_secs(1),
            ws_ping_interval: Duration::from_secs(1),
            max_connections: max,
            max_connections_per_ip: per_ip,
            max_response_bytes: 1024,
            rate_limit: None,
            ask_again_after: Duration::from_secs(1),
        }
    }

    #[test]
    fn connections_are_capped_per_ip_and_in_all() {
        let gate = ConnectionGate::new(&limits(3, 2));
        let (a, b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        let a1 = gate.admit(a).expect("first");
        let _a2 = gate.admit(a).expect("second");
        assert_eq!(gate.admit(a).err(), Some(Refused::PerIp));
        let _b1 = gate.admit(b).expect("another address");
        assert_eq!(gate.admit(b).err(), Some(Refused::Total));
        drop(a1);
        assert!(gate.admit(a).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn a_client_over_its_rate_waits() {
        let limit = RateLimit { count: NonZeroU32::new(2).expect("2"), per: Duration::from_secs(60) };
        let limiter = RateLimiter::new(limit);
        let ip = Some(ClientIp([127, 0, 0, 1].into()));
        let client = Principal::Client(chorus_domain::ClientId::new_v4());
        assert!(limiter.check(Some(&client), ip).is_ok());
        assert!(limiter.check(Some(&client), ip).is_ok());
        let wait = limiter.check(Some(&client), ip).expect_err("third in a minute");
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30), "{wait:?}");
        // Another client, and the address without a token, have their own.
        assert!(limiter.check(Some(&Principal::Client(chorus_domain::ClientId::new_v4())), ip).is_ok());
        assert!(limiter.check(Some(&Principal::Open), ip).is_ok());
        assert!(limiter.check(None, None).is_ok());
    }
}
