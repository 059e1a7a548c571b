//! The `config` interface: the association's `config` object, read-only.

use super::HookState;
use super::bindings::v0_2::edge::hooks::config;

impl config::Host for HookState {
    fn get(&mut self, name: String) -> Option<String> {
        self.config.get(&name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn json(&mut self) -> String {
        serde_json::Value::Object((*self.config).clone()).to_string()
    }
}
