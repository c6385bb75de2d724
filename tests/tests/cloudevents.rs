//! CloudEvents: the typed mapping, the JSON format and the HTTP binding. Round trips are exact in
//! every mode for arbitrary attributes, extensions and data; arbitrary headers and bodies never
//! make `read` panic, and every error it returns is a 4xx.

use event_bus::cloudevents::{
    self, CloudEvent, CloudEventError, Extension, Mode, Received, read, write, write_batch,
};
use event_bus::prelude::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[event(name = "com.example.order.placed", key = order, version = 2)]
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct OrderPlaced {
    order: u64,
    note: String,
}

#[event(name = "com.example.order.placed")]
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct OrderPlacedV1 {
    order: u64,
}

fn extension_name() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,20}".prop_filter("not a specification attribute", |name| {
        ![
            "id",
            "source",
            "specversion",
            "type",
            "datacontenttype",
            "dataschema",
            "subject",
            "time",
            "data",
        ]
        .contains(&name.as_str())
    })
}

fn extension() -> impl Strategy<Value = Extension> {
    prop_oneof![
        any::<String>().prop_map(Extension::String),
        any::<bool>().prop_map(Extension::Boolean),
        any::<i64>().prop_map(Extension::Integer),
    ]
}

fn data() -> impl Strategy<Value = Option<(String, Vec<u8>)>> {
    prop_oneof![
        Just(None),
        any::<Vec<u8>>().prop_map(|bytes| Some(("application/octet-stream".to_owned(), bytes))),
        any::<String>()
            .prop_map(|text| Some(("text/plain; charset=utf-8".to_owned(), text.into_bytes()))),
        (any::<u64>(), any::<String>()).prop_map(|(n, s)| {
            let json = serde_json::json!({ "n": n, "s": s, "list": [1, 2.5, null] });
            Some((
                "application/json".to_owned(),
                serde_json::to_vec(&json).unwrap(),
            ))
        }),
        // Bytes declared as JSON that are not JSON: carried as base64, still exact.
        any::<Vec<u8>>().prop_map(|bytes| Some(("application/json".to_owned(), bytes))),
    ]
}

prop_compose! {
    fn cloud_event()(
        id in ".{1,40}",
        source in ".{1,40}",
        ty in ".{1,40}",
        subject in proptest::option::of(".{0,40}"),
        dataschema in proptest::option::of("[a-z:/.]{1,30}"),
        time in proptest::option::of(Just("2026-12-01T10:00:00.5+01:00".to_owned())),
        extensions in proptest::collection::btree_map(extension_name(), extension(), 0..4),
        data in data(),
    ) -> CloudEvent {
        let mut event = CloudEvent::new(id, source, ty).unwrap();
        if let Some(subject) = subject { event = event.with_subject(subject); }
        if let Some(schema) = dataschema { event = event.with_dataschema(schema); }
        if let Some(time) = time { event = event.with_time(time).unwrap(); }
        for (name, value) in extensions { event = event.with_extension(name, value).unwrap(); }
        if let Some((content_type, bytes)) = data { event = event.with_data(content_type, bytes); }
        event
    }
}

/// Binary mode carries every extension as a string, and reads an empty body as no data: what a
/// binary round trip gives back.
fn as_binary(event: &CloudEvent) -> CloudEvent {
    let mut expected = event.clone();
    for (name, value) in event.extensions() {
        expected = expected
            .with_extension(name.clone(), value.to_string())
            .unwrap();
    }
    if event.data().is_some_and(<[u8]>::is_empty) {
        let mut value: serde_json::Value = serde_json::from_slice(&expected.to_json()).unwrap();
        let object = value.as_object_mut().unwrap();
        object.remove("data");
        object.remove("data_base64");
        expected = CloudEvent::from_json(value.to_string().as_bytes()).unwrap();
    }
    expected
}

#[test]
fn binary_mode_refuses_what_it_cannot_carry() {
    let base = CloudEvent::new("1", "/s", "t").unwrap();
    for content_type in [
        "application/cloudevents+json",
        "Application/CloudEvents-Batch+JSON",
        "text/plain; x=\"\u{e9}\"",
    ] {
        let event = base.clone().with_data(content_type, b"{}".to_vec());
        let mut headers = HeaderMap::new();
        assert!(
            write(&event, Mode::Binary, &mut headers).is_err(),
            "{content_type}"
        );
        let mut headers = HeaderMap::new();
        let body = write(&event, Mode::Structured, &mut headers).unwrap();
        assert_eq!(read(&headers, &body).unwrap(), Received::One(event));
    }
    // A content type with no data: the type survives, and there is still no data.
    let typed_only = CloudEvent::from_json(
        br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain"}"#,
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    let body = write(&typed_only, Mode::Binary, &mut headers).unwrap();
    assert_eq!(read(&headers, &body).unwrap(), Received::One(typed_only));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_mode_round_trips_exactly(event in cloud_event()) {
        let mut headers = HeaderMap::new();
        let body = write(&event, Mode::Structured, &mut headers).unwrap();
        prop_assert_eq!(read(&headers, &body).unwrap(), Received::One(event.clone()));

        let mut headers = HeaderMap::new();
        let body = write(&event, Mode::Binary, &mut headers).unwrap();
        let Received::One(back) = read(&headers, &body).unwrap() else { panic!("one event") };
        prop_assert_eq!(back, as_binary(&event));

        let batch = vec![event.clone(), event.clone()];
        let mut headers = HeaderMap::new();
        let body = write_batch(&batch, &mut headers);
        prop_assert_eq!(read(&headers, &body).unwrap(), Received::Batch(batch));
    }

    #[test]
    fn arbitrary_requests_never_panic_and_fail_with_a_4xx(
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    Just("content-type".to_owned()),
                    Just("ce-specversion".to_owned()),
                    Just("ce-id".to_owned()),
                    Just("ce-source".to_owned()),
                    Just("ce-type".to_owned()),
                    Just("ce-time".to_owned()),
                    "ce-[a-zA-Z0-9_-]{0,25}",
                ],
                prop_oneof![
                    Just("1.0".to_owned()),
                    Just("application/cloudevents+json".to_owned()),
                    Just("application/cloudevents-batch+json".to_owned()),
                    "[ -~]{0,30}",
                    proptest::collection::vec(any::<u8>(), 0..30).prop_map(|bytes| {
                        bytes.iter().map(|b| format!("%{b:02X}")).collect::<String>()
                    }),
                ],
            ),
            0..8,
        ),
        body in prop_oneof![
            any::<Vec<u8>>(),
            Just(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#.to_vec()),
            Just(br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"%%"}]"#.to_vec()),
            Just(br#"{"specversion":"1.0","id":1,"source":"/s","type":"t"}"#.to_vec()),
            Just(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{"a":1}}"#.to_vec()),
        ],
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) else {
                continue;
            };
            map.append(name, value);
        }
        if let Err(error) = read(&map, &body) {
            prop_assert!(error.status().is_client_error(), "{error}: {}", error.status());
        }
    }

    #[test]
    fn typed_events_round_trip_through_every_mode(order in any::<u64>(), note in any::<String>()) {
        let event = OrderPlaced { order, note };
        let cloud = CloudEvent::from_event(&event, "/shop").unwrap();
        for mode in [Mode::Binary, Mode::Structured] {
            let mut headers = HeaderMap::new();
            let body = write(&cloud, mode, &mut headers).unwrap();
            let Received::One(back) = read(&headers, &body).unwrap() else { panic!("one event") };
            prop_assert_eq!(back.decode::<OrderPlaced>().unwrap(), event.clone());
        }
    }
}

#[test]
fn the_typed_mapping_sets_every_attribute_it_promises() {
    let cloud = CloudEvent::from_event(
        &OrderPlaced {
            order: 7,
            note: "gift".into(),
        },
        "/shop",
    )
    .unwrap();
    assert_eq!(cloud.event_type(), "com.example.order.placed");
    assert_eq!(cloud.source(), "/shop");
    assert_eq!(cloud.id().len(), 36, "a UUID: {}", cloud.id());
    assert!(cloud.time().is_some());
    assert_eq!(cloud.datacontenttype(), Some("application/json"));
    assert_eq!(cloud.subject(), Some("7"));
    assert_eq!(cloud.extension("partitionkey"), Some(&Extension::from("7")));
    assert_eq!(cloud.extension("eventversion"), Some(&Extension::from("2")));
    let other = CloudEvent::from_event(
        &OrderPlaced {
            order: 7,
            note: "gift".into(),
        },
        "/shop",
    )
    .unwrap();
    assert_ne!(cloud.id(), other.id(), "a fresh id per event");
}

#[test]
fn a_version_this_program_does_not_read_is_a_typed_error() {
    let v2 = CloudEvent::from_event(
        &OrderPlaced {
            order: 7,
            note: String::new(),
        },
        "/shop",
    )
    .unwrap();
    match v2.decode::<OrderPlacedV1>() {
        Err(CloudEventError::VersionMismatch {
            expected, found, ..
        }) => assert_eq!((expected, found.as_str()), (1, "2")),
        other => panic!("{other:?}"),
    }
    // Without the extension an event is version 1.
    let mut unversioned = CloudEvent::from_event(&OrderPlacedV1 { order: 1 }, "/shop").unwrap();
    unversioned.remove_extension("eventversion");
    assert_eq!(
        unversioned.decode::<OrderPlacedV1>().unwrap(),
        OrderPlacedV1 { order: 1 }
    );
    assert!(matches!(
        unversioned.decode::<OrderPlaced>(),
        Err(CloudEventError::VersionMismatch { .. })
    ));
}

#[test]
fn data_that_does_not_fit_the_type_is_a_typed_error() {
    let wrong = CloudEvent::new("1", "/s", "com.example.order.placed")
        .unwrap()
        .with_extension("eventversion", 2)
        .unwrap()
        .with_data("application/json", br#"{"order":"seven"}"#.to_vec());
    assert!(matches!(
        wrong.decode::<OrderPlaced>(),
        Err(CloudEventError::Data { .. })
    ));
    let text = wrong.clone().with_data("text/plain", b"seven".to_vec());
    assert!(matches!(
        text.decode::<OrderPlaced>(),
        Err(CloudEventError::NotJson { .. })
    ));
    let mut empty = CloudEvent::new("1", "/s", "com.example.order.placed").unwrap();
    empty = empty.with_extension("eventversion", "2").unwrap();
    assert!(matches!(
        empty.decode::<OrderPlaced>(),
        Err(CloudEventError::NoData(_))
    ));
}

/// The examples of the HTTP binding specification (section 3.1.4 and 3.2.4), as sent.
#[test]
fn the_specifications_examples_are_read() {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("ce-specversion", "1.0"),
        ("ce-type", "com.example.someevent"),
        ("ce-time", "2018-04-05T03:56:24Z"),
        ("ce-id", "1234-1234-1234"),
        ("ce-source", "/mycontext/subcontext"),
        ("content-type", "application/json; charset=utf-8"),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    let Received::One(binary) = read(&headers, br#"{"key":"value"}"#).unwrap() else {
        panic!("one event");
    };
    assert_eq!(binary.time(), Some("2018-04-05T03:56:24Z"));
    assert_eq!(binary.data(), Some(&br#"{"key":"value"}"#[..]));

    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "application/cloudevents+json; charset=utf-8"
            .parse()
            .unwrap(),
    );
    let body = br#"{
        "specversion" : "1.0",
        "type" : "com.example.someevent",
        "time" : "2018-04-05T03:56:24Z",
        "id" : "1234-1234-1234",
        "source" : "/mycontext/subcontext",
        "datacontenttype" : "application/xml; charset=utf-8",
        "data" : "<much wow=\"xml\"/>"
    }"#;
    let Received::One(structured) = read(&headers, body).unwrap() else {
        panic!("one event");
    };
    assert_eq!(structured.data(), Some(&br#"<much wow="xml"/>"#[..]));
    assert_eq!(
        structured.datacontenttype(),
        Some("application/xml; charset=utf-8")
    );
    assert_eq!(structured.id(), "1234-1234-1234");
    assert_eq!(cloudevents::SPEC_VERSION, structured.specversion());
}
