use std::sync::OnceLock;

/// Upgrades one stored event type from one schema version to the next.
///
/// Upcasters run on read, before decoding, in aggregates, projectors and replays alike, so
/// events stored under old code stay readable under new code without rewriting the store.
pub trait Upcaster: Send + Sync + std::fmt::Debug {
    /// The event type this upcaster understands.
    fn event_type(&self) -> &str;
    /// The schema version it reads; it produces `reads_version() + 1`.
    fn reads_version(&self) -> u32;
    fn upcast(&self, payload: serde_json::Value) -> Result<serde_json::Value, UpcastError>;
}

/// An upcaster written as a plain function.
#[derive(Debug, Clone, Copy)]
pub struct FnUpcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(serde_json::Value) -> Result<serde_json::Value, UpcastError>,
}

impl Upcaster for FnUpcaster {
    fn event_type(&self) -> &str {
        self.event_type
    }
    fn reads_version(&self) -> u32 {
        self.from_version
    }
    fn upcast(&self, payload: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
        (self.upcast)(payload)
    }
}

/// Why an event could not be upcast.
#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    #[error("no upcaster takes {event_type} from schema version {from} to {to}")]
    NoPath {
        event_type: String,
        from: u32,
        to: u32,
    },
    #[error("{event_type} v{from}: {reason}")]
    Invalid {
        event_type: String,
        from: u32,
        reason: String,
    },
}

/// The ordered set of upcasters of one domain.
#[derive(Debug, Default)]
pub struct UpcasterChain {
    upcasters: Vec<Box<dyn Upcaster>>,
}

impl UpcasterChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// The chain that upcasts nothing.
    pub fn empty() -> &'static UpcasterChain {
        static EMPTY: OnceLock<UpcasterChain> = OnceLock::new();
        EMPTY.get_or_init(UpcasterChain::new)
    }

    #[must_use]
    pub fn with(mut self, upcaster: impl Upcaster + 'static) -> Self {
        self.upcasters.push(Box::new(upcaster));
        self
    }

    /// Applies upcasters step by step from `schema_version` for as long as one matches;
    /// returns the version reached and the upgraded payload.
    pub fn upcast(
        &self,
        event_type: &str,
        mut schema_version: u32,
        mut payload: serde_json::Value,
    ) -> Result<(u32, serde_json::Value), UpcastError> {
        while let Some(step) = self
            .upcasters
            .iter()
            .find(|u| u.event_type() == event_type && u.reads_version() == schema_version)
        {
            payload = step.upcast(payload)?;
            schema_version += 1;
        }
        Ok((schema_version, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_name_to_holder(mut p: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
        let name = p
            .as_object_mut()
            .and_then(|o| o.remove("name"))
            .ok_or_else(|| UpcastError::Invalid {
                event_type: "Opened".into(),
                from: 1,
                reason: "field `name` missing".into(),
            })?;
        p["holder"] = name;
        Ok(p)
    }

    fn add_currency(mut p: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
        p["currency"] = json!("EUR");
        Ok(p)
    }

    fn chain() -> UpcasterChain {
        UpcasterChain::new()
            .with(FnUpcaster {
                event_type: "Opened",
                from_version: 2,
                upcast: add_currency,
            })
            .with(FnUpcaster {
                event_type: "Opened",
                from_version: 1,
                upcast: rename_name_to_holder,
            })
    }

    #[test]
    fn upcasts_step_by_step_in_version_order_whatever_the_registration_order() {
        let (version, payload) = chain()
            .upcast("Opened", 1, json!({"name": "Ada"}))
            .expect("upcast");
        assert_eq!(version, 3);
        assert_eq!(payload, json!({"holder": "Ada", "currency": "EUR"}));
    }

    #[test]
    fn leaves_current_versions_and_other_types_alone() {
        let (version, payload) = chain()
            .upcast("Opened", 3, json!({"holder": "Ada"}))
            .expect("upcast");
        assert_eq!((version, payload), (3, json!({"holder": "Ada"})));
        let (version, _) = chain().upcast("Closed", 1, json!({})).expect("upcast");
        assert_eq!(version, 1);
    }

    #[test]
    fn a_failing_step_names_the_event_and_version() {
        let err = chain()
            .upcast("Opened", 1, json!({"nom": "Ada"}))
            .expect_err("must fail");
        assert_eq!(err.to_string(), "Opened v1: field `name` missing");
    }
}
