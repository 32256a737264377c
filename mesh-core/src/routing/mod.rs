//! Which route a request takes: authority → virtual host → first matching route.
//!
//! This is the pure half of outbound routing, shared by the client on every request and by
//! `mesh explain`. It reads only the request's method, authority, path, port and headers, through
//! [`RequestInfo`], so it needs no HTTP crate and no socket.

mod matching;

use std::collections::BTreeMap;

pub use matching::route_matches;

use crate::model::{Route, RouteConfiguration, Snapshot, VirtualHost};

/// Header lookup for matching. Names are lowercase; a header sent several times is presented
/// joined with `,` (as Envoy does).
pub trait RequestHeaders {
    /// The value of header `name`, if present.
    fn header(&self, name: &str) -> Option<&str>;
}

impl RequestHeaders for [(String, String)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RequestHeaders for BTreeMap<String, String> {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// The parts of a request routing reads.
#[derive(Clone, Copy)]
pub struct RequestInfo<'a, H: RequestHeaders + ?Sized> {
    /// Method, e.g. `GET`.
    pub method: &'a str,
    /// Authority as sent (`reviews:9080`).
    pub authority: &'a str,
    /// Path with its query (`/reviews/1?x=y`).
    pub path_and_query: &'a str,
    /// The destination port (explicit in the URI, or the scheme's default).
    pub port: u16,
    /// Request headers.
    pub headers: &'a H,
}

impl<H: RequestHeaders + ?Sized> RequestInfo<'_, H> {
    /// The path without its query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query, |(p, _)| p)
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, q)| q)
    }
}

/// The route chosen for a request.
#[derive(Clone, Copy, Debug)]
pub struct Selected<'s> {
    /// The port's route configuration.
    pub route_config: &'s RouteConfiguration,
    /// The virtual host the authority selected.
    pub virtual_host: &'s VirtualHost,
    /// The first route that matched.
    pub route: &'s Route,
    /// Its index in the virtual host.
    pub index: usize,
}

/// Why no route was found (answered 404 / UNIMPLEMENTED, response flag NR).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    /// No service is known on this port.
    #[error("no route configuration for port {port}")]
    NoRouteConfig {
        /// The port.
        port: u16,
    },
    /// No virtual host serves this authority on this port.
    #[error("no virtual host for authority {authority:?} on port {port}")]
    NoVirtualHost {
        /// The authority.
        authority: String,
        /// The port.
        port: u16,
    },
    /// The virtual host has no route matching this request.
    #[error("no route of virtual host {virtual_host} matches the request")]
    NoMatchingRoute {
        /// The virtual host's name.
        virtual_host: String,
    },
}

/// Selects the route for a request: the port's route configuration, the virtual host serving
/// the authority, then the first route whose conditions hold.
///
/// Does not allocate unless the authority has upper-case letters.
pub fn select<'s, H: RequestHeaders + ?Sized>(
    snapshot: &'s Snapshot,
    request: &RequestInfo<'_, H>,
) -> Result<Selected<'s>, NoRoute> {
    let port = request.port;
    let route_config = snapshot
        .route_config(port)
        .ok_or(NoRoute::NoRouteConfig { port })?;
    let virtual_host = route_config
        .virtual_host(request.authority)
        .ok_or_else(|| NoRoute::NoVirtualHost {
            authority: request.authority.to_owned(),
            port,
        })?;
    let (index, route) = virtual_host
        .routes
        .iter()
        .enumerate()
        .find(|(_, route)| route_matches(route, request))
        .ok_or_else(|| NoRoute::NoMatchingRoute {
            virtual_host: virtual_host.name.clone(),
        })?;
    Ok(Selected {
        route_config,
        virtual_host,
        route,
        index,
    })
}
