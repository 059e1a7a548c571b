//! The `config` interface: the association's `config` object, read-only.

use super::HookState;
use super::bindings::{v0_1, v0_2};

impl HookState {
    fn config_value(&self, name: &str) -> Option<String> {
        self.config.get(name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn config_json(&self) -> String {
        serde_json::Value::Object((*self.config).clone()).to_string()
    }
}

impl v0_2::edge::hooks::config::Host for HookState {
    fn get(&mut self, name: String) -> Option<String> {
        self.config_value(&name)
    }

    fn json(&mut self) -> String {
        self.config_json()
    }
}

impl v0_1::edge::hooks::config::Host for HookState {
    fn get(&mut self, name: String) -> Option<String> {
        self.config_value(&name)
    }

    fn json(&mut self) -> String {
        self.config_json()
    }
}
