//! A `metrics` recorder that keeps every value in memory, for assertions: counters summed, gauges
//! as last set, histograms as the number of values recorded. Metrics are named
//! `name{label=value,...}`, labels sorted by name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// The recorder; clones share their values.
#[derive(Clone, Default, Debug)]
pub struct Meter {
    values: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Meter {
    /// The value of the metric `name{labels}` (labels as `label=value` pairs, in any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = format!("{name}{{{}}}", labels.join(","));
        self.values.lock().unwrap().get(&key).copied()
    }

    /// Every metric recorded so far, for failure messages.
    pub fn all(&self) -> BTreeMap<String, f64> {
        self.values.lock().unwrap().clone()
    }

    fn handle(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        labels.sort();
        Arc::new(Cell {
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
            values: Arc::clone(&self.values),
        })
    }
}

#[derive(Debug)]
struct Cell {
    key: String,
    values: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Cell {
    fn update(&self, change: impl FnOnce(&mut f64)) {
        let mut values = self.values.lock().unwrap();
        change(values.entry(self.key.clone()).or_default());
    }
}

#[allow(clippy::cast_precision_loss)]
impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.update(|total| *total += value as f64);
    }

    fn absolute(&self, value: u64) {
        self.update(|total| *total = value as f64);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.update(|gauge| *gauge += value);
    }

    fn decrement(&self, value: f64) {
        self.update(|gauge| *gauge -= value);
    }

    fn set(&self, value: f64) {
        self.update(|gauge| *gauge = value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _: f64) {
        self.update(|count| *count += 1.0);
    }
}

impl Recorder for Meter {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}
