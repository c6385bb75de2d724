//! Commands and queries ([`crate::cqrs`]) as CloudEvents: the message as JSON data, its name as
//! the type; a query's reply as `{name}.reply`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::CloudEventError;
use super::event::CloudEvent;

/// A CloudEvent of type `name` carrying `value` as JSON.
pub(crate) fn message_event<T: Serialize>(
    name: &str,
    source: &str,
    value: &T,
) -> Result<CloudEvent, CloudEventError> {
    let data = serde_json::to_vec(value).map_err(CloudEventError::Encode)?;
    let id = crate::pipeline::message_id::new_message_id();
    Ok(CloudEvent::new(id, source, name)?.with_data("application/json", data))
}

/// The JSON data of `cloud`, decoded (a command, a query or a reply of `name`).
pub(crate) fn decode_message<T: DeserializeOwned>(
    cloud: &CloudEvent,
    name: &'static str,
) -> Result<T, CloudEventError> {
    let data = cloud
        .data()
        .ok_or_else(|| CloudEventError::NoData(cloud.event_type().to_owned()))?;
    serde_json::from_slice(data).map_err(|error| {
        CloudEventError::Malformed(format!("the data of `{name}` does not decode: {error}"))
    })
}
