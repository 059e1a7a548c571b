//! Host bindings of the two hook worlds, each frozen as released
//! (`host/wit/vX.Y.Z/`, listed in `host/wit/released.txt`):
//! `edge:hooks@0.2.0`, the current one, which the host speaks, and
//! `edge:hooks@0.1.0`, whose components are adapted at the call (`compat`).

mod compat;

/// The current world: the four events in the `events` interface.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "wit/v0.2.0",
        world: "hooks",
        imports: { "edge:hooks/fetch.send": async },
        exports: { default: async },
    });
}

/// The first world: the four events exported by the world itself.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "hooks",
        exports: { default: async },
    });
}

pub use v0_2::edge::hooks::types::{
    Arm, Context, DynamicOrigin, Event, Forward, Header, Protocol, Request, RequestAction, Response,
};

/// The name of the current world's `events` export.
pub const EVENTS_EXPORT: &str = "edge:hooks/events@0.2.0";

/// The `types` interfaces declare types only.
impl v0_2::edge::hooks::types::Host for super::HookState {}
impl v0_1::edge::hooks::types::Host for super::HookState {}

#[cfg(test)]
mod tests {
    /// Each released world's WIT, as frozen here.
    const FROZEN: [(&str, &str); 2] = [
        (
            "edge:hooks@0.1.0",
            include_str!("../../../wit/v0.1.0/hooks.wit"),
        ),
        (
            "edge:hooks@0.2.0",
            include_str!("../../../wit/v0.2.0/hooks.wit"),
        ),
    ];
    const RELEASED: &str = include_str!("../../../wit/released.txt");
    /// The WIT the SDKs are built from.
    const SDK: &str = include_str!("../../../../guest-sdk/wit/hooks.wit");

    /// A WIT file without its comments and blank lines: what a change of
    /// which would change the contract.
    fn contract(wit: &str) -> String {
        wit.lines()
            .map(|line| line.split_once("//").map_or(line, |(code, _)| code).trim())
            .filter(|line| !line.is_empty())
            .map(|line| format!("{line}\n"))
            .collect()
    }

    fn digest(wit: &str) -> String {
        let sum = <sha2::Sha256 as sha2::Digest>::digest(contract(wit).as_bytes());
        crate::ids::hex(&sum)
    }

    /// `package edge:hooks@X.Y.Z;` of a WIT file.
    fn package(wit: &str) -> &str {
        wit.lines()
            .find_map(|line| line.trim().strip_prefix("package "))
            .and_then(|rest| rest.strip_suffix(';'))
            .unwrap_or_default()
    }

    #[test]
    fn released_worlds_are_frozen() {
        let listed: Vec<(&str, &str)> = RELEASED
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| line.split_once(' ').expect("`package digest`"))
            .collect();
        assert_eq!(
            listed.len(),
            FROZEN.len(),
            "every released world has bindings and a line in released.txt"
        );
        for ((name, wit), (listed_name, listed_digest)) in FROZEN.iter().zip(&listed) {
            assert_eq!((package(wit), *name), (*listed_name, *listed_name));
            assert_eq!(
                digest(wit),
                *listed_digest,
                "{name} is released: its WIT must not change (a new contract is a new version)"
            );
        }
        // The SDKs build components for a released world only as it was
        // released.
        if let Some((name, wit)) = FROZEN.iter().find(|(name, _)| *name == package(SDK)) {
            assert_eq!(
                contract(SDK),
                contract(wit),
                "guest-sdk/wit/hooks.wit differs from the released {name}"
            );
        }
    }

    #[test]
    fn a_changed_contract_is_seen_and_a_comment_is_not() {
        let (_, wit) = FROZEN[1];
        let recommented = wit.replace("/// ", "/// Reworded: ");
        assert_eq!(digest(&recommented), digest(wit));
        let changed = wit.replacen("status: u16,", "status: u32,", 1);
        assert_ne!(changed, wit);
        assert_ne!(digest(&changed), digest(wit));
    }
}
