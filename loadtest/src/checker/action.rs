//! The resend rule: what a client with one numbered message in flight does with a reply. The
//! golden frames (tests/golden/frames.json) say it once for every client; the test below holds
//! this one to them.

use serde_json::Value;

/// What to do with the reply to the message in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Counted (or answered as an already applied duplicate): acknowledged.
    Ack,
    /// `store_unavailable` or `outcome_unknown`: send the same seq again.
    Resend,
    /// `session_expired`: the session is gone; start a new one, knowingly.
    StartOver,
    /// Anything else is a failure to report. With one message in flight everything before it
    /// was acknowledged, so even a `seq_gap` means an acknowledged message was lost.
    Report,
}

/// The action for `reply` to the message numbered `pending`.
pub(crate) fn action(reply: &Value, pending: u64) -> Action {
    match (reply["type"].as_str(), reply["code"].as_str()) {
        (Some("count"), _) if reply["seq"] == pending => Action::Ack,
        (Some("error"), Some("store_unavailable" | "outcome_unknown")) => Action::Resend,
        (Some("error"), Some("session_expired")) => Action::StartOver,
        _ => Action::Report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's placeholders replaced by their examples.
    fn example(value: &Value, placeholders: &Value) -> Value {
        match value {
            Value::String(s) => placeholders[s.as_str()]["example"]
                .as_str()
                .map_or_else(|| value.clone(), |e| Value::String(e.to_owned())),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), example(v, placeholders)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    #[test]
    fn every_golden_exchange_gets_the_fixtures_action() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/frames.json");
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let exchanges: Vec<&Value> = ["conversation", "store_failures"]
            .iter()
            .flat_map(|part| golden[part].as_array().unwrap())
            .filter(|case| case.get("client_action").is_some())
            .collect();
        assert!(exchanges.len() >= 6, "the fixture lost its exchanges");
        for case in exchanges {
            let sent: Value = serde_json::from_str(case["client"].as_str().unwrap()).unwrap();
            let pending = sent["seq"].as_u64().unwrap_or(0);
            let expected = match case["client_action"].as_str().unwrap() {
                "ack" => Action::Ack,
                "resend" => Action::Resend,
                "start_over" => Action::StartOver,
                // One message in flight: a gap is a lost acknowledged message.
                "resend_from_expected" | "report" => Action::Report,
                other => panic!("unknown client_action {other}"),
            };
            let reply = example(&case["server"], &golden["placeholders"]);
            assert_eq!(action(&reply, pending), expected, "{}", case["name"]);
        }
    }
}
